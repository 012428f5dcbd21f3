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

      # OpenSSL::HMAC objects kept per thread (fiber) and key: reset and reused, a third of the
      # cost of OpenSSL::HMAC.digest, which sets the algorithm and key up again on every call.
      HMAC_CACHE = :bridge_security_hmac
      HMAC_CACHE_SIZE = 16

      module_function

      # The bytes a request MAC covers. +metadata+: a Hash of String => String.
      def request_input(function, key_id, nonce, version, deadline_ms, encoding, metadata, body)
        request_head(function, key_id, nonce, version, deadline_ms, encoding, metadata, body.bytesize) << body.b
      end

      # The request MAC (the body is fed to HMAC as it is, not copied into the input).
      def request_mac(key, function, key_id, nonce, version, deadline_ms, encoding, metadata, body)
        hmac(key).update(request_head(function, key_id, nonce, version, deadline_ms, encoding, metadata, body.bytesize))
                 .update(body).digest
      end

      # The bytes a reply MAC covers; +packet+: :WORK_DATA, :WORK_COMPLETE or :WORK_EXCEPTION
      # (or its number).
      def reply_input(function, key_id, nonce, packet, payload)
        reply_head(function, key_id, nonce, packet, payload.bytesize) << payload.b
      end

      def hmac_sha256(key, data) = hmac(key).update(data).digest

      # The 32-byte MAC a worker appends to a reply packet's payload.
      def reply_mac(key, function, key_id, nonce, packet, payload)
        hmac(key).update(reply_head(function, key_id, nonce, packet, payload.bytesize)).update(payload).digest
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

      # Everything of a request input before the body's bytes (its length included).
      def request_head(function, key_id, nonce, version, deadline_ms, encoding, metadata, body_size)
        out = REQUEST_DOMAIN.dup
        str(out, function)
        str(out, key_id)
        str(out, nonce)
        entries = metadata.empty? ? metadata : metadata.map { |k, v| [k.to_s.b, v.to_s.b] }.sort_by(&:first)
        out << [version & 0xFFFF_FFFF, deadline_ms, encoding & 0xFFFF_FFFF, entries.size].pack("Nq>NN")
        entries.each do |key, value|
          str(out, key)
          str(out, value)
        end
        out << [body_size].pack("Q>")
      end

      def reply_head(function, key_id, nonce, packet, payload_size)
        out = REPLY_DOMAIN.dup
        str(out, function)
        str(out, key_id)
        str(out, nonce)
        out << [PACKETS.fetch(packet, packet), payload_size].pack("CQ>")
      end

      # A fresh HMAC-SHA256 state for +key+ (this thread's object for it, reset).
      def hmac(key)
        cache = (Thread.current[HMAC_CACHE] ||= {})
        cache.clear if cache.size >= HMAC_CACHE_SIZE && !cache.key?(key)
        (cache[key] ||= OpenSSL::HMAC.new(key, "SHA256")).reset
      end

      def str(out, value)
        value = value.b
        out << [value.bytesize].pack("N") << value
      end
      private_class_method :str, :request_head, :reply_head, :hmac
    end
  end
end
