# frozen_string_literal: true

require_relative "../dispatcher"
require_relative "../gearman/connection"

module Bridge
  class Worker
    # One connection to one job server and the thread that serves it: connect, SET_CLIENT_ID,
    # CAN_DO each function, ECHO_REQ; only once the server echoed: take a job slot, GRAB_JOB_UNIQ,
    # run the job; on NO_JOB, PRE_SLEEP until NOOP. Unanswered for the worker's read timeout (a
    # GRAB or an ECHO) or closed: drop the connection (gearmand re-queues what it had assigned on
    # it) and reconnect with backoff. A job whose answer the server does not read for the I/O
    # timeout (the read timeout by default) is abandoned the same way. Links of other servers
    # never wait for this one, except for a job slot this one holds for at most a read timeout
    # beyond its job's own time.
    class Link
      # Re-check an idle server this often (an echo, then a grab) in case a NOOP was lost.
      IDLE_WAKEUP = 5.0

      def initialize(worker, server, index)
        @worker = worker
        @logger = worker.logger
        @dispatcher = worker.dispatcher
        @slots = worker.slots
        @index = index
        @connection = worker.new_connection(server)
        @retry_at = 0.0
        @backoff = BACKOFF_MIN
        @down_reported = false
        @in_job = false
      end

      def to_s = "#{@connection}##{@index}"

      # True while a job taken on this link runs (or its answer is being written).
      def in_job? = @in_job

      def run
        until @worker.stopping?
          begin
            unless @connection.connected?
              wait(@retry_at - monotonic) if @retry_at > monotonic
              next if @worker.stopping? || @retry_at > monotonic

              next unless connect
            end
            grab_and_serve && idle
          rescue StandardError => e # a bug of the runtime: report it, start this link over
            @logger.error("#{self}: #{e.class}: #{e.message}\n#{e.backtrace&.first(10)&.join("\n")}")
            lost(e)
          end
        end
      ensure
        @connection.close
      end

      private

      # Connects, registers, and waits for the server to echo. True when it did.
      def connect
        @connection.connect
        @connection.send_packet(:SET_CLIENT_ID, "#{@worker.client_id}-#{@index}")
        @dispatcher.function_names.each { |name| @connection.send_packet(:CAN_DO, name) }
        raise Gearman::ConnectionError, "no answer to ECHO_REQ within #{@worker.read_timeout} s" unless echo

        @logger.info("connected to #{self}") if @down_reported || @index.zero?
        @backoff = BACKOFF_MIN
        @down_reported = false
        true
      rescue Gearman::ConnectionError, Gearman::ProtocolError => e
        lost(e) unless @worker.stopping?
        @connection.close
        false
      end

      # ECHO_REQ round trip within the read timeout (false when stopped meanwhile).
      def echo
        @connection.echo("bridge-ruby", timeout: @worker.read_timeout)
      end

      # Takes a slot and grabs. With a single job server, jobs are then taken back to back while
      # there are any, each WORK_COMPLETE written together with the next GRAB_JOB_UNIQ. Returns
      # true when the server said NO_JOB (go idle), false otherwise.
      def grab_and_serve
        return false unless @slots.acquire(@worker)

        begin
          back_to_back = @worker.servers.size == 1
          @connection.send_packet(:GRAB_JOB_UNIQ)
          loop do
            packet = answer or return false
            case packet.type
            when :JOB_ASSIGN_UNIQ
              perform(packet, back_to_back)
              return false unless back_to_back && !@worker.stopping?

              @connection.send_packet(:GRAB_JOB_UNIQ) # goes out with the held WORK_COMPLETE
            when :NO_JOB then return true
            when :ERROR then raise Gearman::ConnectionError, "server error #{packet.args[0]}: #{packet.args[1]}"
            end
            # NOOP (a wakeup from before we asked) and anything else: keep waiting for the answer.
          end
        ensure
          @slots.release
        end
      rescue Gearman::ConnectionError, Gearman::ProtocolError => e
        lost(e)
        false
      end

      # The server's answer to a GRAB; nil when stopping; ConnectionError after the read timeout.
      def answer
        packet = @connection.read_packet(@worker.read_timeout)
        return packet if packet
        return nil if @worker.stopping?

        raise Gearman::ConnectionError, "no answer to GRAB_JOB_UNIQ within #{@worker.read_timeout} s"
      end

      # Runs a job. Its answer (or a stream item) that the server does not read for the I/O timeout
      # closes the connection (Gearman::Connection): the job ends there, gearmand re-queues it, and
      # the slot goes back at once.
      def perform(packet, back_to_back)
        @in_job = true
        handle, function, unique, payload = packet.args
        begin
          @dispatcher.perform(Job.new(@connection, handle, function, unique, payload, hold_final: back_to_back))
        rescue Gearman::ConnectionError => e
          @logger.warn("#{self}: job #{handle} (#{function}) abandoned: #{e.message} (gearmand re-queues it)")
          raise
        end
        @connection.flush if @worker.stopping?
      ensure
        @in_job = false
      end

      # PRE_SLEEP, then wait for NOOP. After IDLE_WAKEUP seconds without one, the server must echo
      # before the next grab, so a server that froze while we slept never holds a job slot.
      def idle
        @connection.send_packet(:PRE_SLEEP)
        deadline = monotonic + IDLE_WAKEUP
        until @worker.stopping? || (remaining = deadline - monotonic) <= 0
          packet = @connection.read_packet(remaining) or next
          return if packet.type == :NOOP

          @logger.warn("#{self}: server error #{packet.args[0]}: #{packet.args[1]}") if packet.type == :ERROR
        end
        return if @worker.stopping? || echo

        raise Gearman::ConnectionError, "no answer to ECHO_REQ within #{@worker.read_timeout} s"
      rescue Gearman::ConnectionError, Gearman::ProtocolError => e
        lost(e) unless @worker.stopping?
      end

      # The connection is gone: reconnect with backoff. Reported once per outage: a TLS failure
      # (a refused certificate or name: configuration, not weather) as an error, others as a warning.
      def lost(error)
        @connection.close
        if @down_reported
          @logger.debug("#{self}: #{error.message}; reconnecting")
        else
          @logger.public_send(error.is_a?(Gearman::TlsFailure) ? :error : :warn,
                              "#{self}: #{error.message}; reconnecting with backoff")
          @down_reported = true
        end
        @retry_at = monotonic + (@backoff * (1 + (rand * 0.2)))
        @backoff = [@backoff * 2, BACKOFF_MAX].min
      end

      # Sleeps up to +seconds+, or until the worker stops.
      def wait(seconds)
        IO.select([@worker.wake_reader], nil, nil, seconds) if seconds.positive?
      end

      def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
