# frozen_string_literal: true

require "set"
require_relative "codec"
require_relative "errors"

module Bridge
  # What `bridge generate --lang ruby` builds a service's base class with, grpc-style:
  #
  #   class Service
  #     include Bridge::Service
  #     self.service_name = "text.v1.TextToolkit"
  #     rpc :Slugify, SlugRequest, SlugReply
  #     rpc :WordFrequencies, TextRequest, stream(WordCount)
  #     rpc :Legacy, Blob, Blob, function_name: "legacy_echo"
  #     rpc :Resize, ResizeRequest, ResizeReply, function_name: "resize_image", bare: true, encoding: :json
  #   end
  #
  # Each rpc gets a snake_case method (slugify(request, context)) that raises UNIMPLEMENTED until a
  # subclass defines it. A server-streaming method yields each reply (or returns an Enumerable).
  # A +bare+ rpc (wire contract section 8) takes jobs that are the request alone, in +encoding+
  # (:protobuf, :msgpack, :json or :raw), and answers the reply alone: what an existing Gearman
  # client or worker sends and reads.
  module Service
    # One rpc: its Gearman function name, message classes and the handler method it calls.
    # +owner+ is the generated class that declared it (and holds the UNIMPLEMENTED default).
    # +bare+: no envelope and no frames; +encoding+ is then the one its jobs and replies use.
    Rpc = Struct.new(:name, :function_name, :input, :output, :server_streaming, :method_name, :owner,
                     :bare, :encoding, keyword_init: true) do
      # Whether +handler+ defines the method itself rather than inheriting the generated default.
      def implemented_by?(handler)
        handler.method(method_name).owner != owner
      end
    end

    # Methods every Ruby object has (Kernel and Object, Ruby 3.1). An rpc whose snake_case name is one
    # of them (Sleep, Raise, Send...) gets the suffix "_rpc" (sleep_rpc), so that defining it does not
    # shadow Kernel#sleep or #raise inside the handler. bridge's Ruby emitter keeps the same list.
    RESERVED_METHOD_NAMES = %w[
      __callee__ __dir__ __id__ __method__ __send__ abort at_exit autoload binding caller
      caller_locations catch class clone define_singleton_method display dup enum_for eval exec
      exit extend fail fork format freeze gem gem_original_require gets global_variables hash
      initialize initialize_clone initialize_copy initialize_dup inspect instance_eval
      instance_exec instance_variable_get instance_variable_set instance_variables itself lambda
      load local_variables loop method method_missing methods object_id open p pp print printf
      private_methods proc protected_methods public_method public_methods public_send putc puts
      raise rand readline readlines remove_instance_variable require require_relative select
      send set_trace_func singleton_class singleton_method singleton_method_added
      singleton_method_removed singleton_method_undefined singleton_methods sleep spawn sprintf
      srand syscall system taint tap test then throw to_enum to_s trace_var trap trust untaint
      untrace_var untrust warn yield_self
    ].to_set.freeze
    RESERVED_SUFFIX = "_rpc"

    # Marks the reply type of a server-streaming rpc.
    Stream = Struct.new(:type)

    # The handler method of rpc +name+: EchoScalars -> :echo_scalars, Sleep -> :sleep_rpc.
    def self.method_name_for(name)
      snake = name.to_s.gsub(/([A-Z]+)([A-Z][a-z])/, '\1_\2').gsub(/([a-z\d])([A-Z])/, '\1_\2').downcase
      (RESERVED_METHOD_NAMES.include?(snake) ? snake + RESERVED_SUFFIX : snake).to_sym
    end

    # The encoding of an rpc declared with +bare+ and +encoding+ (nil for an enveloped one: its
    # callers choose per job); ArgumentError for what the generator refuses too.
    def self.check_bare(name, input, output, streaming, bare, encoding)
      encoding = encoding&.to_s&.downcase&.to_sym
      unless bare
        return nil if encoding.nil? || Codec::ENCODINGS.include?(encoding)

        raise ArgumentError, "rpc #{name}: encoding #{encoding} needs bare: true"
      end
      raise ArgumentError, "rpc #{name}: a bare rpc cannot stream" if streaming

      encoding ||= :protobuf
      unless Codec::BARE_ENCODINGS.include?(encoding)
        raise ArgumentError, "rpc #{name}: unknown encoding #{encoding.inspect} (#{Codec::BARE_ENCODINGS.join(', ')})"
      end

      [input, output].each { |klass| Codec::Raw.field(klass.descriptor) } if encoding == :raw
      encoding
    end

    def self.included(base)
      base.extend(ClassMethods)
    end

    module ClassMethods
      attr_writer :service_name

      # Full protobuf name of the service ("text.v1.TextToolkit"); subclasses inherit it.
      def service_name
        @service_name || (superclass.respond_to?(:service_name) ? superclass.service_name : nil)
      end

      def rpcs
        @rpcs ||= superclass.respond_to?(:rpcs) ? superclass.rpcs.dup : {}
      end

      def stream(type)
        Stream.new(type)
      end

      def rpc(name, input, output, function_name: nil, bare: false, encoding: nil)
        streaming = output.is_a?(Stream)
        method_name = Service.method_name_for(name)
        encoding = Service.check_bare(name, input, streaming ? output.type : output, streaming, bare, encoding)
        rpcs[name.to_sym] = Rpc.new(
          name: name.to_s,
          function_name: function_name || "#{service_name}.#{name}",
          input: input,
          output: streaming ? output.type : output,
          server_streaming: streaming,
          method_name: method_name,
          owner: self,
          bare: bare ? true : false,
          encoding: encoding
        ).freeze
        full_name = "#{service_name}.#{name}"
        define_method(method_name) do |_request, _context|
          ::Kernel.raise Bridge::Error.new(:unimplemented, "#{full_name} is not implemented by this worker")
        end
      end

    end
  end
end
