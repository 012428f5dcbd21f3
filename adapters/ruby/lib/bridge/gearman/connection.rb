# frozen_string_literal: true

require "openssl"
require "socket"
require_relative "packet"
require_relative "../security/tls"

module Bridge
  module Gearman
    # The job server went away, refused us, or stopped answering in time.
    class ConnectionError < StandardError; end

    # A TLS connection that cannot be made or was refused: a certificate or name refused on
    # either side, or TLS settings that cannot be used. Retrying alone will not fix it.
    class TlsFailure < ConnectionError; end

    # One TCP connection to one job server, worker side. Every wait is bounded: a started packet
    # or a write that makes no progress for +io_timeout+ seconds closes the connection and raises
    # ConnectionError (a healthy gearmand reads and writes continuously: the server stopped, and
    # nothing more can arrive). A wait for the next packet also ends when +interrupt+ (an IO, e.g.
    # the worker's stop pipe) becomes readable.
    #
    # With +tls+ (a Bridge::Security::TlsConfig) the connection is TLS (a +tls://+ server: a TLS
    # front before gearmand): TLS 1.2+, the server's certificate and name verified, the client
    # certificate presented; the handshake is bounded by +connect_timeout+ and the same timeouts
    # apply to what goes through it.
    class Connection
      # Small enough for malloc's heap (a larger request is an mmap per read); a started packet
      # is read in steps of up to READ_MAX.
      READ_CHUNK = 64 * 1024
      READ_MAX = 4 * 1024 * 1024
      STOP_WRITE_GRACE = 0.5

      attr_reader :host, :port, :generation, :tls

      def initialize(host, port, connect_timeout: 5.0, io_timeout: 30.0, max_body: DEFAULT_MAX_BODY, interrupt: nil,
                     tls: nil)
        @interrupt = interrupt
        @tls = tls
        @read_any = false
        @host = host
        @port = port
        @connect_timeout = connect_timeout
        @io_timeout = io_timeout
        @max_body = max_body
        @socket = nil
        @decoder = nil
        @pending = []
        @held = nil
        @write_lock = Mutex.new
        @generation = 0 # one more at every connect: a job's packets only go to its own connection
      end

      def to_s
        where = @host.include?(":") ? "[#{@host}]:#{@port}" : "#{@host}:#{@port}"
        @tls ? "tls://#{where}" : where
      end

      def connected?
        !@socket.nil?
      end

      # The socket to wait on with IO.select (nil when closed).
      def to_io
        @socket
      end

      def connect
        close
        @held = nil
        deadline = monotonic + @connect_timeout
        tcp = Socket.tcp(@host, @port, connect_timeout: @connect_timeout)
        tcp.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
        @socket = @tls ? handshake(tcp, deadline) : tcp
        @generation += 1
        @read_any = false
        @decoder = Decoder.new(max_body: @max_body, expect: MAGIC_RES)
        @pending.clear
        self
      rescue SystemCallError, SocketError, IOError => e
        tcp&.close unless @socket
        close
        raise ConnectionError, "cannot connect to #{self}: #{e.message}"
      end

      def close
        sock = @socket
        @socket = nil
        sock&.close
      rescue IOError
        nil
      end

      # Sends one packet. Thread-safe: a handler may report from its own threads.
      #
      # With +hold: true+ a small packet is kept and goes out with the next packet sent (or #flush):
      # the worker holds a job's WORK_COMPLETE to write it together with its next GRAB_JOB_UNIQ,
      # one syscall instead of two. With +generation+, the packet is only sent on that connection
      # (ConnectionError once it was closed, even if it was made again since).
      def send_packet(type, *args, hold: false, generation: nil)
        head, data = Gearman.encode_head(type, *args)
        @write_lock.synchronize do
          if generation && (generation != @generation || !@socket)
            raise ConnectionError, "#{self}: the connection #{type} belongs to is gone"
          end

          if data && data.bytesize > 64 * 1024
            flush_held
            write_all(head)
            write_all(data)
          else
            head << (data.encoding == Encoding::BINARY ? data : data.b) if data
            if @held
              head = @held << head
              @held = nil
            end
            hold ? (@held = head) : write_all(head)
          end
        end
      end

      # Writes a held packet now.
      def flush
        @write_lock.synchronize { flush_held }
      end

      # The next packet from the server, or nil when none came within +timeout+ seconds (or the
      # interrupt IO became readable).
      def read_packet(timeout)
        return @pending.shift unless @pending.empty?

        deadline = monotonic + timeout
        loop do
          fill(deadline - monotonic) or return nil
          return @pending.shift unless @pending.empty?
        end
      end

      # True when a packet is already decoded and waiting (IO.select would not see it).
      def pending?
        !@pending.empty?
      end

      # Reads what the socket has (after waiting at most +timeout+); false when nothing came (or
      # the interrupt IO became readable).
      # A started packet is read to its end with the I/O timeout, so a large job is not cut off.
      def fill(timeout)
        sock = @socket or raise ConnectionError, "#{self}: not connected"
        want = read_size
        deadline = monotonic + timeout
        # :wait_readable (TLS: also :wait_writable, and a record that carried no data, such as
        # the session tickets a TLS 1.3 server sends after the handshake: wait on, until the
        # deadline, for the data)
        while (chunk = sock.read_nonblock(want, exception: false)).is_a?(Symbol)
          watch = chunk == :wait_readable ? [sock] : []
          ready, writable, = IO.select(@interrupt ? watch + [@interrupt] : watch, chunk == :wait_writable ? [sock] : nil,
                                       nil, [deadline - monotonic, 0].max)
          return false unless ready&.include?(sock) || writable&.any?
        end
        closed("closed the connection") if chunk.nil?

        @read_any = true
        @pending.concat(@decoder.feed(chunk))
        while @pending.empty? && @decoder.buffered.positive?
          # Mid-packet: the rest is owed to us; waiting past io_timeout means the peer is stuck.
          unless buffered?(sock)
            IO.select([sock], nil, nil, @io_timeout) or stalled("nothing of a started packet came for #{@io_timeout} s")
          end
          chunk = sock.read_nonblock(read_size, exception: false)
          next if chunk.is_a?(Symbol)
          raise ConnectionError, "#{self} closed the connection mid-packet" if chunk.nil?

          @pending.concat(@decoder.feed(chunk))
        end
        true
      rescue OpenSSL::SSL::SSLError => e
        close
        raise TlsFailure, "#{self}: TLS: #{Connection.tls_reason(e)}"
      rescue SystemCallError, IOError => e
        closed(e.message)
      end

      # ECHO_REQ round trip: true when the server echoed +data+ back within +timeout+ seconds.
      # Other packets that arrive meanwhile are kept for the next read.
      def echo(data = "ping", timeout: 5.0)
        send_packet(:ECHO_REQ, data)
        deadline = monotonic + timeout
        seen = []
        until (remaining = deadline - monotonic) <= 0
          packet = read_packet(remaining) or break
          return (@pending.unshift(*seen) && true) if packet.type == :ECHO_RES && packet.args[0] == data.b

          seen << packet
        end
        @pending.unshift(*seen)
        false
      end

      # An OpenSSL error in words; a refused client certificate says so.
      def self.tls_reason(error)
        text = error.message.sub(/\A.*state=[^:]*: ?/, "").sub(/\ASSL_(?:read|connect|write)[^:]*: ?/, "")
        text = error.message if text.empty?
        if text.match?(/alert (?:certificate required|bad certificate|unknown ca|handshake failure)/i)
          text += " (the server refused this side's client certificate, or it sent none)"
        end
        text
      end

      private

      # The TLS handshake on +tcp+, finished by +deadline+ (monotonic seconds).
      def handshake(tcp, deadline)
        ssl = OpenSSL::SSL::SSLSocket.new(tcp, @tls.context)
        ssl.sync_close = true
        ssl.hostname = @tls.server_name || @host
        loop do
          case ssl.connect_nonblock(exception: false)
          when :wait_readable then IO.select([tcp], nil, nil, [deadline - monotonic, 0].max)
          when :wait_writable then IO.select(nil, [tcp], nil, [deadline - monotonic, 0].max)
          else return ssl
          end or raise ConnectionError, "no TLS handshake within #{@connect_timeout} s"
        end
      rescue OpenSSL::SSL::SSLError => e
        tcp.close
        raise TlsFailure, "cannot connect to #{self}: TLS handshake failed: #{Connection.tls_reason(e)}"
      rescue Bridge::Security::TlsError => e
        tcp.close
        raise TlsFailure, "cannot connect to #{self}: #{e.message}"
      rescue StandardError
        tcp.close
        raise
      end

      # Decrypted bytes already waiting inside the TLS layer (IO.select cannot see them).
      def buffered?(sock)
        @tls && sock.pending.positive?
      end

      # The server closed or reset the connection. A TLS front that refuses this side's client
      # certificate after the handshake (TLS 1.3) may do it before any answer.
      def closed(why)
        close
        if @tls && !@read_any
          raise TlsFailure, "#{self}: the TLS front closed the connection before any answer (#{why}); it does so " \
                            "when it refuses this side's client certificate (or when gearmand behind it is down)"
        end
        raise ConnectionError, why.start_with?("closed") ? "#{self} #{why}" : "#{self}: #{why}"
      end

      def flush_held
        return unless @held

        held = @held
        @held = nil
        write_all(held)
      end

      def read_size
        @decoder.wanted.clamp(READ_CHUNK, READ_MAX)
      end

      def write_all(data)
        sock = @socket or raise ConnectionError, "#{self}: not connected"
        offset = 0
        size = data.bytesize
        while offset < size
          part = offset.zero? ? data : data.byteslice(offset, size - offset)
          written = sock.write_nonblock(part, exception: false)
          if written == :wait_writable
            wait_writable(sock)
          elsif written == :wait_readable # TLS: the layer must read first
            IO.select([sock], nil, nil, @io_timeout) or stalled("the server sent nothing TLS needed for #{@io_timeout} s")
          else
            offset += written
          end
        end
      rescue SystemCallError, IOError, OpenSSL::SSL::SSLError => e
        closed(e.message) # what was written of a packet cannot be taken back: nothing else may follow it
      end

      # Waits until +sock+ takes more bytes: at most io_timeout, and at most STOP_WRITE_GRACE once
      # the interrupt IO is readable (the worker stops). A server that reads nothing for that long
      # (frozen, cut off) has its connection closed: gearmand re-queues the job of a closed
      # connection, and the job's slot goes back to the other servers at once.
      def wait_writable(sock)
        started = monotonic
        deadline = started + @io_timeout
        watch = @interrupt ? [@interrupt] : nil
        loop do
          remaining = deadline - monotonic
          stalled("the server read nothing for #{(monotonic - started).round(1)} s") if remaining <= 0

          readable, writable, = IO.select(watch, [sock], nil, remaining)
          return if writable&.any?
          next unless readable&.any?

          watch = nil # stopping: from now on a short grace only
          deadline = [deadline, monotonic + STOP_WRITE_GRACE].min
        end
      end

      def stalled(why)
        close
        raise ConnectionError, "#{self}: #{why}; connection closed"
      end

      def monotonic
        Process.clock_gettime(Process::CLOCK_MONOTONIC)
      end
    end
  end
end
