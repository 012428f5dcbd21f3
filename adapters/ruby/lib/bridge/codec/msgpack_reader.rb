# frozen_string_literal: true

require_relative "../errors"

module Bridge
  module Codec
    module Msgpack
      # Reads msgpack bytes straight into a message, walking its descriptor plan (wire contract
      # section 5.8). Written in Ruby on purpose, instead of MessagePack.unpack plus a tree walk:
      # ruby-msgpack 1.4 allocates an array of the size an array header claims before reading
      # its items, so a 20-byte body claiming 4 billion items ended in NoMemoryError and killed
      # the worker. Here every declared length or count is checked against the bytes that remain
      # before anything is allocated, unknown keys are skipped without building objects (msgpack
      # extensions included), and messages nest at most MAX_NESTING deep.
      class Reader
        # msgpack type names by first byte, for error messages.
        def self.name_of(byte)
          case byte
          when nil then "end of data"
          when 0x00..0x7f, 0xe0..0xff, 0xcc..0xd3 then "int"
          when 0x80..0x8f, 0xde, 0xdf then "map"
          when 0x90..0x9f, 0xdc, 0xdd then "array"
          when 0xa0..0xbf, 0xd9..0xdb then "str"
          when 0xc0 then "nil"
          when 0xc2, 0xc3 then "bool"
          when 0xc4..0xc6 then "bin"
          when 0xc7..0xc9, 0xd4..0xd8 then "ext"
          when 0xca, 0xcb then "float"
          else format("the never-used byte 0x%02x", byte)
          end
        end

        # +unknown_keys: false+ is the bare form (wire contract section 8.1): a key the type does not
        # have is a decoding error, at every level, instead of being skipped.
        def initialize(bytes, unknown_keys: true)
          @s = bytes.encoding == Encoding::BINARY ? bytes : bytes.b
          @pos = 0
          @end = @s.bytesize
          @unknown_keys = unknown_keys
        end

        # The whole input as one +klass+ message; zero bytes are the empty message (section 5), in the
        # bare form only for a type without fields (section 8.1).
        def read_top(klass)
          if @end.zero?
            return @unknown_keys ? klass.new : Msgpack.empty_bare_payload(klass, "MSGPACK")
          end

          byte = @s.getbyte(0)
          unless map?(byte)
            raise DecodeError, "#{klass.descriptor.name}: a message must be a msgpack map, got #{Reader.name_of(byte)}"
          end

          message = read_message(klass, klass.descriptor.name, 0)
          raise DecodeError, "#{@end - @pos} bytes after the message" if @pos != @end

          message
        end

        private

        def map?(byte) = (0x80..0x8f).cover?(byte) || byte == 0xde || byte == 0xdf

        def truncated(what) = raise(DecodeError, "truncated msgpack: #{what} goes past the end of the data")

        # A length or count of +size+ bytes (big-endian) at the position, checked to fit in what
        # remains at +unit+ bytes per element at least.
        def read_length(size, unit, what)
          truncated(what) if @pos + size > @end
          n = case size
              when 1 then @s.getbyte(@pos)
              when 2 then @s.unpack1("n", offset: @pos)
              else @s.unpack1("N", offset: @pos)
              end
          @pos += size
          if n * unit > @end - @pos
            raise DecodeError, "msgpack #{what} declares #{n} #{unit == 1 ? 'bytes' : 'items'}, " \
                               "only #{@end - @pos} bytes remain"
          end
          n
        end

        def map_header(where)
          byte = @s.getbyte(@pos)
          @pos += 1
          case byte
          when 0x80..0x8f then byte & 0x0f
          when 0xde then read_length(2, 2, "map")
          when 0xdf then read_length(4, 2, "map")
          else
            @pos -= 1
            raise DecodeError, "#{where}: expected a map, got #{Reader.name_of(byte)}"
          end.tap { |n| raise DecodeError, "#{where}: map of #{n} entries exceeds the data" if n * 2 > @end - @pos }
        end

        def array_header(where)
          byte = @s.getbyte(@pos)
          @pos += 1
          case byte
          when 0x90..0x9f then byte & 0x0f
          when 0xdc then read_length(2, 1, "array")
          when 0xdd then read_length(4, 1, "array")
          else
            @pos -= 1
            raise DecodeError, "#{where}: expected an array, got #{Reader.name_of(byte)}"
          end.tap { |n| raise DecodeError, "#{where}: array of #{n} items exceeds the data" if n > @end - @pos }
        end

        def bytes(n, what)
          truncated(what) if @pos + n > @end
          chunk = @s.byteslice(@pos, n)
          @pos += n
          chunk
        end

        # The str at the position as a UTF-8 String, or nil (nothing consumed) when it is no str.
        def str
          byte = @s.getbyte(@pos)
          n = case byte
              when 0xa0..0xbf then @pos += 1
                                   byte & 0x1f
              when 0xd9 then @pos += 1
                             read_length(1, 1, "str")
              when 0xda then @pos += 1
                             read_length(2, 1, "str")
              when 0xdb then @pos += 1
                             read_length(4, 1, "str")
              else return nil
              end
          bytes(n, "str").force_encoding(Encoding::UTF_8)
        end

        def utf8!(text, where)
          raise DecodeError, "#{where}: str is not valid UTF-8" unless text.valid_encoding?

          text
        end

        def read_message(klass, where, depth)
          raise DecodeError, "messages nested deeper than #{MAX_NESTING} levels" if depth > MAX_NESTING

          message = klass.new
          fields = Msgpack.plan_by_name(klass.descriptor)
          oneofs_seen = nil
          map_header(where).times do
            key = str
            if key.nil?
              raise DecodeError, "#{where}: map key of type #{Reader.name_of(@s.getbyte(@pos))} is not a field name (str)"
            end

            path = "#{where}.#{utf8!(key, where)}"
            field = fields[key]
            if field.nil? # unknown keys are skipped, whatever their value (not in a bare payload)
              unless @unknown_keys
                raise DecodeError, "#{where}: unknown key #{key.inspect} (a bare MSGPACK payload uses only " \
                                   "its type's field names: wire contract section 8.1)"
              end

              skip(path)
              next
            end
            # A key given twice: the last one wins, as in the other runtimes' msgpack maps.
            if @s.getbyte(@pos) == 0xc0 # nil means unset
              @pos += 1
              field.descriptor.clear(message)
              oneofs_seen&.delete(field.oneof) if field.oneof && oneofs_seen&.[](field.oneof) == field.name
              next
            end
            if field.oneof
              oneofs_seen ||= {}
              seen = oneofs_seen[field.oneof]
              if seen && seen != field.name
                raise DecodeError, "#{path}: more than one member of oneof '#{field.oneof}' is set"
              end

              oneofs_seen[field.oneof] = field.name
            end
            read_field(message, field, path, depth)
          end
          message
        end

        def read_field(message, field, path, depth)
          case field.kind
          when :repeated
            target = field.descriptor.get(message)
            target.clear unless target.empty?
            type = field.type
            subtype = field.subtype
            array_header(path).times { |i| target << read_value(type, subtype, path, depth, i) }
          when :map
            target = field.descriptor.get(message)
            target.clear unless target.length.zero?
            key_type = field.key.type
            value_type = field.value.type
            value_subtype = field.value.subtype
            map_header(path).times do
              key = read_value(key_type, nil, "#{path} key", depth)
              target[key] = read_value(value_type, value_subtype, path, depth, key)
            end
          else
            field.descriptor.set(message, read_value(field.type, field.subtype, path, depth))
          end
        end

        # One value of a field's type; +index+ (an array index or map key) only names it in errors.
        def read_value(type, subtype, path, depth, index = nil)
          byte = @s.getbyte(@pos)
          case type
          when :string
            text = str or wrong(type, byte, path, index)
            utf8!(text, path)
          when :bytes
            case byte
            when 0xc4 then @pos += 1
                           bytes(read_length(1, 1, "bin"), "bin")
            when 0xc5 then @pos += 1
                           bytes(read_length(2, 1, "bin"), "bin")
            when 0xc6 then @pos += 1
                           bytes(read_length(4, 1, "bin"), "bin")
            else wrong(type, byte, path, index)
            end
          when :double, :float
            case byte
            when 0xcb then fixed(8, "G")
            when 0xca then fixed(4, "g")
            else wrong(type, byte, path, index)
            end
          when :bool
            case byte
            when 0xc3 then @pos += 1
                           true
            when 0xc2 then @pos += 1
                           false
            else wrong(type, byte, path, index)
            end
          when :message
            wrong(type, byte, path, index) unless byte && map?(byte)
            read_message(subtype.msgclass, index.nil? ? path : "#{path}[#{index.inspect}]", depth + 1)
          else # integers and enums
            value = integer(byte) or wrong(type, byte, path, index)
            unless INT_RANGES.fetch(type).cover?(value)
              raise DecodeError, "#{path}: #{value} is out of range for #{type}"
            end

            value
          end
        end

        def wrong(type, byte, path, index)
          path = "#{path}[#{index.inspect}]" unless index.nil?
          expected = case type
                     when :string then "str"
                     when :bytes then "bin"
                     when :double, :float then "a float"
                     when :bool then "a bool"
                     when :message then "a map"
                     else "an integer"
                     end
          raise DecodeError, "#{path}: expected #{expected}, got #{Reader.name_of(byte)}"
        end

        def fixed(size, format)
          truncated("a number") if @pos + 1 + size > @end
          value = @s.unpack1(format, offset: @pos + 1)
          @pos += 1 + size
          value
        end

        # The integer at the position, or nil (nothing consumed) when it is no integer.
        def integer(byte)
          case byte
          when 0x00..0x7f then @pos += 1
                               byte
          when 0xe0..0xff then @pos += 1
                               byte - 0x100
          when 0xcc then fixed(1, "C")
          when 0xcd then fixed(2, "n")
          when 0xce then fixed(4, "N")
          when 0xcf then fixed(8, "Q>")
          when 0xd0 then fixed(1, "c")
          when 0xd1 then fixed(2, "s>")
          when 0xd2 then fixed(4, "l>")
          when 0xd3 then fixed(8, "q>")
          end
        end

        # Skips one value of any type without building it (iteratively: no recursion however deep
        # the value nests). Every str in it must still be valid UTF-8, as the other runtimes'
        # msgpack readers require.
        def skip(path)
          todo = 1
          while todo.positive?
            todo -= 1
            byte = @s.getbyte(@pos) or truncated("a value")
            @pos += 1
            case byte
            when 0x00..0x7f, 0xe0..0xff, 0xc0, 0xc2, 0xc3 then nil
            when 0x80..0x8f then todo += 2 * (byte & 0x0f)
            when 0x90..0x9f then todo += byte & 0x0f
            when 0xa0..0xbf, 0xd9..0xdb
              @pos -= 1
              utf8!(str, path)
            # (read_length moves past the length first: add its result to @pos afterwards)
            when 0xc4 then n = read_length(1, 1, "bin")
                           @pos += n
            when 0xc5 then n = read_length(2, 1, "bin")
                           @pos += n
            when 0xc6 then n = read_length(4, 1, "bin")
                           @pos += n
            when 0xc7 then n = read_length(1, 1, "ext")
                           @pos += n + 1
            when 0xc8 then n = read_length(2, 1, "ext")
                           @pos += n + 1
            when 0xc9 then n = read_length(4, 1, "ext")
                           @pos += n + 1
            when 0xca, 0xce, 0xd2 then @pos += 4
            when 0xcb, 0xcf, 0xd3 then @pos += 8
            when 0xcc, 0xd0 then @pos += 1
            when 0xcd, 0xd1 then @pos += 2
            when 0xd4..0xd8 then @pos += 1 + (1 << (byte - 0xd4))
            when 0xdc then todo += read_length(2, 1, "array")
            when 0xdd then todo += read_length(4, 1, "array")
            when 0xde then todo += 2 * read_length(2, 2, "map")
            when 0xdf then todo += 2 * read_length(4, 2, "map")
            else raise DecodeError, "#{path}: the never-used byte 0xc1"
            end
            truncated("a value") if @pos > @end
            # Each value pending takes one byte at least.
            truncated("a container") if todo > @end - @pos
          end
        end
      end
    end
  end
end
