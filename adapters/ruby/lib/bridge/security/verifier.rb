# frozen_string_literal: true

require_relative "keyring"
require_relative "signing"

module Bridge
  module Security
    # The one check that is no authentication failure: RESOURCE_EXHAUSTED (section 9.2, step 4):
    # the job is well signed, the worker just cannot vouch for it.
    REPLAY_CACHE_FULL = "replay cache full"

    # Characters a log line never shows raw: controls (C0, DEL, C1 such as U+0085), format
    # characters (bidi overrides...), unassigned and private code points, and every separator but
    # the space (U+2028...).
    UNSAFE_IN_LOG = /[[\p{C}\p{Z}]&&[^ ]]/

    # A job's key id (or an error message) as a log line shows it: the caller chose it, so it is
    # quoted, cut to +limit+ characters, and every byte that is not UTF-8 and every character of UNSAFE_IN_LOG is
    # escaped (\n, \xFF, \u0085, \u2028), as Python's repr does: no line break or terminal
    # escape of an attacker's reaches the log.
    def self.log_quote(text, limit: 64)
      text = text.to_s.dup.force_encoding(Encoding::UTF_8)
      text = text.valid_encoding? ? text[0, limit] : text.byteslice(0, limit)
      text.inspect.gsub(UNSAFE_IN_LOG) { |c| format(c.ord > 0xFFFF ? "\\u{%X}" : "\\u%04X", c.ord) }
    end

    # (key id, nonce) => deadline, kept until the deadline; bounded (wire contract, section 9.2).
    # A nonce seen before is a replay whatever job handle it comes with: handles are gearmand's
    # counters, given out again by a restarted gearmand or another one on a host of the same
    # name, so they prove nothing. When full, the entry with the earliest deadline is evicted and its deadline
    # becomes the *floor*: a job whose deadline is not later than the floor is refused from then
    # on, so no evicted nonce can ever run again. Thread-safe (one cache per worker process).
    class ReplayCache
      attr_reader :floor_ms, :capacity

      def initialize(capacity = 100_000)
        raise ArgumentError, "capacity must be at least 1" unless capacity.is_a?(Integer) && capacity >= 1

        @capacity = capacity
        @by_nonce = {}
        # binary min-heap of [deadline, key id, nonce], ordered by deadline alone: which of equal
        # deadlines goes first changes nothing (the floor refuses every job at that deadline)
        @expiry = []
        @floor_ms = 0
        @lock = Mutex.new
      end

      def size = @lock.synchronize { @by_nonce.size }

      # Records the job; nil when it may run, else why not ("replayed", REPLAY_CACHE_FULL).
      def admit(key_id, nonce, deadline_ms, now_ms)
        @lock.synchronize do
          expire(now_ms)
          return REPLAY_CACHE_FULL if deadline_ms <= @floor_ms
          return "replayed" if @by_nonce.key?([key_id, nonce])

          while @by_nonce.size >= @capacity
            oldest, old_id, old_nonce = pop
            @by_nonce.delete([old_id, old_nonce])
            @floor_ms = [@floor_ms, oldest].max
            return REPLAY_CACHE_FULL if deadline_ms <= @floor_ms
          end
          @by_nonce[[key_id.dup.freeze, nonce.dup.freeze]] = deadline_ms
          push([deadline_ms, key_id, nonce])
          nil
        end
      end

      private

      def expire(now_ms)
        while (top = @expiry[0]) && top[0] <= now_ms
          _, key_id, nonce = pop
          @by_nonce.delete([key_id, nonce])
        end
      end

      def push(entry)
        heap = @expiry
        heap << entry
        i = heap.size - 1
        while i.positive?
          parent = (i - 1) / 2
          break if heap[parent][0] <= entry[0]

          heap[i] = heap[parent]
          i = parent
        end
        heap[i] = entry
      end

      def pop
        heap = @expiry
        top = heap[0]
        last = heap.pop
        return top if heap.empty?

        i = 0
        size = heap.size
        loop do
          child = (2 * i) + 1
          break if child >= size

          child += 1 if child + 1 < size && heap[child + 1][0] < heap[child][0]
          break if last[0] <= heap[child][0]

          heap[i] = heap[child]
          i = child
        end
        heap[i] = last
        top
      end
    end

    # The checks of section 9.2, in order, for one worker process; #check gives nil (the job may
    # run) or the failed check's words (the job is answered UNAUTHENTICATED, or
    # RESOURCE_EXHAUSTED for REPLAY_CACHE_FULL).
    class JobVerifier
      # How far ahead a signed job's deadline may be (seconds), and the clock skew tolerated.
      DEFAULT_WINDOW = 86_400.0
      CLOCK_SKEW = 300.0

      attr_accessor :keyring
      attr_reader :replay, :window_ms

      def initialize(keyring, window: DEFAULT_WINDOW, replay_capacity: 100_000)
        raise ArgumentError, "window must be > 0" unless window.is_a?(Numeric) && window.positive?

        @keyring = keyring
        @window_ms = (window * 1000).to_i
        @skew_ms = (CLOCK_SKEW * 1000).to_i
        @replay = ReplayCache.new(replay_capacity)
      end

      # The key to sign this job's replies with: the job named a known key and carried a 16-byte
      # nonce; else nil (its replies go unsigned).
      def reply_key(key_id, nonce)
        return nil unless nonce.bytesize == Signing::NONCE_SIZE

        @keyring.key(key_id)
      end

      # +fields+: key_id, nonce, mac, version, deadline_ms, encoding (Integers as sent), metadata
      # (Hash), body (String). +now_ms+: the worker's clock, Unix milliseconds.
      def check(function, key_id:, nonce:, mac:, version:, deadline_ms:, encoding:, metadata:, body:,
                now_ms: Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond))
        return "unsigned job" if key_id.empty?

        key = @keyring.key(key_id) or return "unknown key id"
        return "bad signature" if nonce.bytesize != Signing::NONCE_SIZE || mac.bytesize != Signing::MAC_SIZE

        expected = Signing.request_mac(key, function, key_id, nonce, version, deadline_ms, encoding, metadata, body)
        return "bad signature" unless OpenSSL.fixed_length_secure_compare(expected, mac)
        return "a signed job needs a deadline" if deadline_ms.zero?
        return "expired" if deadline_ms <= now_ms
        return "deadline too far ahead" if deadline_ms > now_ms + @window_ms + @skew_ms

        @replay.admit(key_id, nonce, deadline_ms, now_ms)
      end
    end
  end
end
