# frozen_string_literal: true

require "socket"
require_relative "packet"

module Bridge
  module Gearman
    # The job server went away, refused us, or stopped answering in time.
    class ConnectionError < StandardError; end

    # One TCP connection to one job server, worker side. Every wait is bounded: a started packet
    # or a write that makes no progress for +io_timeout+ seconds closes the connection and raises
    # ConnectionError (a healthy gearmand reads and writes continuously: the server stopped, and
    # nothing more can arrive). A wait for the next packet also ends when +interrupt+ (an IO, e.g.
    # the worker's stop pipe) becomes readable.
    class Connection
      # Small enough for malloc's heap (a larger request is an mmap per read); a started packet
      # is read in steps of up to READ_MAX.
      READ_CHUNK = 64 * 1024
      READ_MAX = 4 * 1024 * 1024
      STOP_WRITE_GRACE = 0.5

      attr_reader :host, :port, :generation

      def initialize(host, port, connect_timeout: 5.0, io_timeout: 30.0, max_body: DEFAULT_MAX_BODY, interrupt: nil)
        @interrupt = interrupt
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
        "#{@host}:#{@port}"
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
        @socket = Socket.tcp(@host, @port, connect_timeout: @connect_timeout)
        @generation += 1
        @socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
        @decoder = Decoder.new(max_body: @max_body, expect: MAGIC_RES)
        @pending.clear
        self
      rescue SystemCallError, SocketError, IOError => e
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
        chunk = sock.read_nonblock(want, exception: false)
        if chunk == :wait_readable
          ready, = IO.select(@interrupt ? [sock, @interrupt] : [sock], nil, nil, [timeout, 0].max)
          return false unless ready&.include?(sock)

          chunk = sock.read_nonblock(want, exception: false)
          return false if chunk == :wait_readable
        end
        raise ConnectionError, "#{self} closed the connection" if chunk.nil?

        @pending.concat(@decoder.feed(chunk))
        while @pending.empty? && @decoder.buffered.positive?
          # Mid-packet: the rest is owed to us; waiting past io_timeout means the peer is stuck.
          IO.select([sock], nil, nil, @io_timeout) or stalled("nothing of a started packet came for #{@io_timeout} s")
          chunk = sock.read_nonblock(read_size, exception: false)
          next if chunk == :wait_readable
          raise ConnectionError, "#{self} closed the connection mid-packet" if chunk.nil?

          @pending.concat(@decoder.feed(chunk))
        end
        true
      rescue SystemCallError, IOError => e
        raise ConnectionError, "#{self}: #{e.message}"
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

      private

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
          else
            offset += written
          end
        end
      rescue SystemCallError, IOError => e
        close # what was written of a packet cannot be taken back: nothing else may follow it
        raise ConnectionError, "#{self}: #{e.message}"
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
