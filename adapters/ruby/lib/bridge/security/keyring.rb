# frozen_string_literal: true

module Bridge
  module Security
    # A key list that cannot be used: bad syntax, a short key, a bad key id. The message names
    # the key id (only when it cannot be a key written the wrong way round) or the entry's
    # position, never the key.
    class KeyringError < ArgumentError; end

    # The named HMAC keys a worker accepts (wire contract, section 9): from BRIDGE_KEYS /
    # BRIDGE_KEYS_FILE or given in code; never printed (#inspect and #to_s show the ids only).
    #
    #   keys = Bridge::Security::Keyring.parse("k2026:BASE64,k2025:BASE64")
    #   keys = Bridge::Security::Keyring.new({ "k2026" => key_bytes })
    #   keys = Bridge::Security::Keyring.from_env   # nil when neither variable is set
    class Keyring
      MIN_KEY_BYTES = 16
      KEY_ID = /\A[A-Za-z0-9._-]{1,64}\z/
      BASE64 = %r{\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\z}

      attr_reader :signing_id

      # +keys+: key id => key bytes (a Hash, in order); +signing_id+: the key a client signs
      # with (default: the first).
      def initialize(keys, signing_id = nil)
        raise KeyringError, "a keyring needs at least one key" if keys.nil? || keys.empty?

        @keys = {}
        keys.each_with_index do |(key_id, key), index|
          key_id = key_id.to_s
          unless KEY_ID.match?(key_id)
            raise KeyringError, "key #{Keyring.describe(key_id, index + 1)}: the id must be 1 to 64 characters of " \
                                "[A-Za-z0-9._-] (entries are ID:BASE64)"
          end

          key = key.to_s.b
          if key.bytesize < MIN_KEY_BYTES
            raise KeyringError, "key #{Keyring.describe(key_id, index + 1)} is #{key.bytesize} bytes; " \
                                "at least #{MIN_KEY_BYTES} are needed"
          end

          @keys[key_id.dup.freeze] = key.freeze
        end
        @keys.freeze
        chosen = signing_id.nil? || signing_id.empty? ? @keys.each_key.first : signing_id
        unless @keys.key?(chosen)
          raise KeyringError, "the signing key id #{Keyring.describe(chosen, nil)} is not among the keys (#{ids}); " \
                              "BRIDGE_SIGNING_KEY names a key id, not a key"
        end

        @signing_id = chosen
      end

      # The key named +key_id+, or nil.
      def key(key_id) = @keys[key_id]

      def signing_key = @keys[@signing_id]

      def ids = @keys.keys.join(", ")

      def size = @keys.size

      def inspect = "#<#{self.class.name} ids=[#{ids}] signing_id=#{@signing_id.inspect}>"
      alias to_s inspect

      # How an error names a key: its id when that cannot be a key written the wrong way round (a
      # valid id of at most 20 characters: a 16-byte key is 22+ base64 characters), else its
      # entry number (+number+), or for a signing key id "(not shown: it looks like a key)".
      def self.describe(key_id, number)
        key_id = key_id.to_s
        return key_id.inspect if key_id.length <= 20 && KEY_ID.match?(key_id)

        number ? "entry #{number}" : "(not shown: it looks like a key)"
      end

      # +id:BASE64+ entries separated by commas or newlines; +#+ starts a comment line.
      def self.parse(text, signing_id = nil)
        keys = {}
        lines = text.to_s.split(/\r?\n|\r/).reject { |line| line.lstrip.start_with?("#") }
        lines.join(",").split(",", -1).map(&:strip).each_with_index do |entry, index|
          next if entry.empty?

          key_id, sep, encoded = entry.partition(":")
          raise KeyringError, "key entry #{index + 1} is not ID:BASE64" if sep.empty?

          key_id = key_id.strip
          encoded = encoded.strip
          raise KeyringError, "key #{describe(key_id, index + 1)}: not standard base64" unless BASE64.match?(encoded)
          raise KeyringError, "key #{describe(key_id, index + 1)} is listed twice" if keys.key?(key_id)

          keys[key_id] = encoded.unpack1("m")
        end
        new(keys, signing_id)
      end

      # BRIDGE_KEYS, or the file BRIDGE_KEYS_FILE (BRIDGE_SIGNING_KEY picks the signing key);
      # nil when neither is set.
      def self.from_env(env = ENV)
        signing = env["BRIDGE_SIGNING_KEY"]
        signing = nil if signing&.empty?
        return parse(env["BRIDGE_KEYS"], signing) unless env["BRIDGE_KEYS"].to_s.empty?

        path = env["BRIDGE_KEYS_FILE"].to_s
        return nil if path.empty?

        text = begin
          File.read(path, encoding: "UTF-8")
        rescue SystemCallError => e
          raise KeyringError, "BRIDGE_KEYS_FILE #{path}: #{e.message.sub(/ @ .*/, "").sub(/ - .*\z/, "")}"
        end
        parse(text, signing)
      end

      # A Keyring from what a Worker's +keys:+ option may be: a Keyring, a Hash (id => bytes)
      # or BRIDGE_KEYS text.
      def self.coerce(keys)
        case keys
        when Keyring, nil then keys
        when Hash then new(keys)
        when String then parse(keys)
        else raise ArgumentError, "keys: a Bridge::Security::Keyring, a Hash of id => key, or \"id:BASE64,...\""
        end
      end
    end
  end
end
