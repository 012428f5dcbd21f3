# frozen_string_literal: true

require "openssl"

module Bridge
  module Security
    # The exact bytes signed (wire contract, sections 9.1 and 9.3), HMAC-SHA256 with OpenSSL::HMAC,
    # and the constant-time comparison of OpenSSL.fixed_length_secure_compare.
    module Signing
      MAC_SIZE = 32
      NONCE_SIZE = 16
      REQUEST_DOMAIN = "bridge.v1.request\0".b.freeze
      REPLY_DOMAIN = "bridge.v1.reply\0".b.freeze
      # Which reply packet a MAC covers (9.3).
      PACKETS = { WORK_DATA: 1, WORK_COMPLETE: 2, WORK_EXCEPTION: 3 }.freeze

      module_function

      # The bytes a request MAC covers. +metadata+: a Hash of String => String.
      def request_input(function, key_id, nonce, version, deadline_ms, encoding, metadata, body)
        out = REQUEST_DOMAIN.dup
        str(out, function)
        str(out, key_id)
        str(out, nonce)
        entries = metadata.map { |k, v| [k.to_s.b, v.to_s.b] }.sort_by(&:first)
        out << [version & 0xFFFF_FFFF, deadline_ms, encoding & 0xFFFF_FFFF, entries.size].pack("Nq>NN")
        entries.each do |key, value|
          str(out, key)
          str(out, value)
        end
        out << [body.bytesize].pack("Q>") << body.b
      end

      # The bytes a reply MAC covers; +packet+: :WORK_DATA, :WORK_COMPLETE or :WORK_EXCEPTION
      # (or its number).
      def reply_input(function, key_id, nonce, packet, payload)
        out = REPLY_DOMAIN.dup
        str(out, function)
        str(out, key_id)
        str(out, nonce)
        out << [PACKETS.fetch(packet, packet), payload.bytesize].pack("CQ>") << payload.b
      end

      def hmac_sha256(key, data) = OpenSSL::HMAC.digest("SHA256", key, data)

      # The 32-byte MAC a worker appends to a reply packet's payload.
      def reply_mac(key, function, key_id, nonce, packet, payload)
        hmac_sha256(key, reply_input(function, key_id, nonce, packet, payload))
      end

      # Constant-time equality of two MACs (false when their sizes differ).
      def equal?(expected, actual)
        expected.bytesize == actual.bytesize && OpenSSL.fixed_length_secure_compare(expected, actual)
      end

      # The payload of a signed reply packet when its MAC is right, else nil.
      def split_signed(key, function, key_id, nonce, packet, signed)
        return nil if signed.bytesize < MAC_SIZE

        payload = signed.byteslice(0, signed.bytesize - MAC_SIZE)
        mac = signed.byteslice(-MAC_SIZE, MAC_SIZE)
        equal?(reply_mac(key, function, key_id, nonce, packet, payload), mac) ? payload : nil
      end

      def str(out, value)
        value = value.b
        out << [value.bytesize].pack("N") << value
      end
      private_class_method :str
    end
  end
end
