# frozen_string_literal: true

require "openssl"

module Bridge
  module Security
    # TLS settings that cannot be used (a file missing or not what it should be). The message
    # names the file, never its contents.
    class TlsError < ArgumentError; end

    # Where the CA, the client certificate and its key are, for +tls://host:port+ job servers
    # (a TLS front such as stunnel before gearmand, docs/security.md). The worker connects with
    # TLS 1.2 or newer, checks the server's certificate against +ca+ (nil: the system's CAs) and
    # its name against the address's host (or +server_name+), and presents +cert+ / +key+ (+key+
    # nil: the key is in the +cert+ file).
    #
    #   Bridge::Security::TlsConfig.new(ca: "ca.pem", cert: "worker.pem", key: "worker.key")
    #   Bridge::Security::TlsConfig.from_env  # BRIDGE_TLS_CA, BRIDGE_TLS_CERT, BRIDGE_TLS_KEY,
    #                                         # BRIDGE_TLS_SERVER_NAME (empty counts as unset)
    class TlsConfig
      ENV_NAMES = { ca: "BRIDGE_TLS_CA", cert: "BRIDGE_TLS_CERT", key: "BRIDGE_TLS_KEY",
                    server_name: "BRIDGE_TLS_SERVER_NAME" }.freeze

      attr_reader :ca, :cert, :key, :server_name

      def initialize(ca: nil, cert: nil, key: nil, server_name: nil)
        @ca, @cert, @key, @server_name = [ca, cert, key, server_name].map { |v| v.nil? || v.to_s.empty? ? nil : v.to_s }
        raise TlsError, "a TLS key without a certificate: give cert too" if @key && !@cert

        @lock = Mutex.new
        @context = nil
        @stamps = nil
      end

      def self.from_env(env = ENV)
        new(**ENV_NAMES.transform_values { |name| env[name].to_s.strip })
      rescue TlsError => e
        raise TlsError, "#{e.message} (BRIDGE_TLS_KEY is set, BRIDGE_TLS_CERT is not)"
      end

      def inspect = "#<#{self.class.name} ca=#{@ca.inspect} cert=#{@cert.inspect} key=#{@key.inspect}>"

      # A client-side context: TLS 1.2+, peer certificate and host name verified, our certificate
      # presented. Made once, and again when one of the files changed (a renewed certificate is
      # picked up by the next connection). TlsError when a file cannot be used.
      def context
        stamps = [@ca, @cert, @key].map { |path| stamp(path) }
        @lock.synchronize do
          @context = build unless @context && @stamps == stamps
          @stamps = stamps
          @context
        end
      end

      # Loads the files now (TlsError naming the one that is wrong).
      def check
        context
        self
      end

      private

      def stamp(path)
        return nil unless path

        info = File.stat(path)
        [info.mtime.to_r, info.size]
      rescue SystemCallError
        nil
      end

      def build
        ctx = OpenSSL::SSL::SSLContext.new
        ctx.min_version = OpenSSL::SSL::TLS1_2_VERSION
        ctx.verify_mode = OpenSSL::SSL::VERIFY_PEER
        ctx.verify_hostname = true
        ctx.cert_store = store
        if @cert
          chain = read_pem(@cert, "certificate") { |text| pem_certificates(text) }
          ctx.cert = chain.first
          ctx.extra_chain_cert = chain.drop(1) unless chain.size < 2
          ctx.key = read_pem(@key || @cert, "key") { |text| OpenSSL::PKey.read(text, "") } # "": never prompt
          unless ctx.cert.check_private_key(ctx.key)
            raise TlsError, "TLS certificate #{@cert.inspect} / key #{(@key || @cert).inspect}: they do not match"
          end
        end
        ctx.setup # loads everything now, and freezes the context
        ctx
      end

      def store
        store = OpenSSL::X509::Store.new
        if @ca
          raise TlsError, "TLS CA file #{@ca.inspect} cannot be used: no such file" unless File.file?(@ca)

          begin
            store.add_file(@ca)
          rescue OpenSSL::X509::StoreError => e
            raise TlsError, "TLS CA file #{@ca.inspect} cannot be used: #{e.message}"
          end
        else
          store.set_default_paths
        end
        store
      end

      def read_pem(path, what)
        text = File.read(path)
        yield text
      rescue SystemCallError => e
        raise TlsError, "TLS #{what} file #{path.inspect} cannot be read: #{e.message.sub(/ @ .*/, "")}"
      rescue OpenSSL::OpenSSLError, ArgumentError
        raise TlsError, "TLS #{what} file #{path.inspect} holds no usable PEM #{what}"
      end

      def pem_certificates(text)
        blocks = text.scan(/-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----/m)
        raise ArgumentError, "no certificate" if blocks.empty?

        blocks.map { |block| OpenSSL::X509::Certificate.new(block) }
      end
    end
  end
end
