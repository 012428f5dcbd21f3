# frozen_string_literal: true

require "logger"
require "socket"
require_relative "dispatcher"
require_relative "gearman/connection"

module Bridge
  # Takes jobs from one or more gearmand servers and answers them through the Dispatcher.
  #
  # Parallelism: +concurrency+ threads, each with its own connection to every server (the way
  # libgearman workers scale). Ruby's GVL lets threads overlap while they wait (sockets, sleeps,
  # database calls, subprocesses), not while they compute: for CPU-bound handlers run several worker
  # processes instead (the harness and gearmand treat them alike).
  #
  # Stop: #stop (safe inside a signal trap: it only sets a flag and writes one byte to a pipe) makes
  # every thread finish the job it runs, then return from #run.
  class Worker
    IDLE_WAKEUP = 5.0 # re-grab this often even without NOOP, in case a wakeup was lost
    BACKOFF_MIN = 0.1
    BACKOFF_MAX = 5.0

    attr_reader :dispatcher

    # +servers+: "host:port,host:port" or an Array of such strings.
    def initialize(servers: "127.0.0.1:4730", concurrency: 1,
                   max_request_bytes: Dispatcher::DEFAULT_MAX_REQUEST_BYTES,
                   client_id: nil, logger: Worker.default_logger,
                   connect_timeout: 5.0, io_timeout: 30.0)
      raise ArgumentError, "concurrency must be >= 1" unless concurrency.is_a?(Integer) && concurrency >= 1

      @servers = Worker.parse_servers(servers)
      @concurrency = concurrency
      @client_id = client_id || "ruby-#{Socket.gethostname}-#{Process.pid}"
      @logger = logger
      @connect_timeout = connect_timeout
      @io_timeout = io_timeout
      # The framing limit sits above the job limit, so an oversized job is still read and
      # answered RESOURCE_EXHAUSTED instead of breaking the connection.
      @max_body = [Gearman::DEFAULT_MAX_BODY, max_request_bytes + 64 * 1024].max
      @dispatcher = Dispatcher.new(max_request_bytes: max_request_bytes, logger: logger)
      @stopping = false
      @wake_reader, @wake_writer = IO.pipe
    end

    def self.default_logger
      Logger.new($stderr, level: ENV.fetch("BRIDGE_LOG_LEVEL", "info"), progname: "bridge-ruby")
    end

    # "a:1,b:2" or ["a:1", "b"] => [["a", 1], ["b", 4730]]
    def self.parse_servers(servers)
      list = Array(servers).flat_map { |s| s.to_s.split(",") }.map(&:strip).reject(&:empty?)
      raise ArgumentError, "no job server given" if list.empty?

      list.map do |server|
        host, port = server.start_with?("[") ? server.match(/\A\[(.*)\](?::(\d+))?\z/)&.captures : server.split(":", 2)
        raise ArgumentError, "bad job server address #{server.inspect}" if host.nil? || host.empty?
        raise ArgumentError, "bad port in #{server.inspect}" if port && port !~ /\A\d+\z/

        [host, port ? Integer(port, 10) : 4730]
      end
    end

    def add_service(handler)
      @dispatcher.add_service(handler)
      self
    end

    def stopping? = @stopping

    # Asks every thread to stop taking jobs; running jobs finish first. Signal-trap safe.
    def stop
      @stopping = true
      @wake_writer.write_nonblock("x", exception: false)
    rescue IOError
      nil
    end

    # Serves until #stop. With +trap_signals+, SIGTERM and SIGINT call #stop.
    def run(trap_signals: false)
      raise ArgumentError, "no service added" if @dispatcher.function_names.empty?

      previous = trap_signals ? %w[TERM INT].to_h { |sig| [sig, Signal.trap(sig) { stop }] } : {}
      @logger.info("serving #{@dispatcher.function_names.size} function(s) on " \
                   "#{@servers.map { |h, p| "#{h}:#{p}" }.join(",")} with #{@concurrency} thread(s)")
      threads = Array.new(@concurrency) do |i|
        Thread.new(i) do |lane|
          Thread.current.name = "bridge-lane-#{lane}"
          Lane.new(self, lane).run
        end
      end
      threads.each(&:join)
      @logger.info("stopped")
    ensure
      previous&.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
    end

    # --- used by the lanes ---------------------------------------------------------------------

    attr_reader :wake_reader, :logger # :nodoc:

    def new_connections # :nodoc:
      @servers.map do |host, port|
        Gearman::Connection.new(host, port, connect_timeout: @connect_timeout, io_timeout: @io_timeout,
                                            max_body: @max_body)
      end
    end

    def client_id = @client_id # :nodoc:
    def io_timeout = @io_timeout # :nodoc:

    # One thread's loop: its own connection to every server, GRAB_JOB_UNIQ round the servers,
    # PRE_SLEEP when none has work, NOOP to wake up, reconnect with backoff when one goes away.
    class Lane
      # A connection and its reconnect schedule.
      Link = Struct.new(:connection, :retry_at, :backoff, :down_reported)

      def initialize(worker, index)
        @worker = worker
        @index = index
        @logger = worker.logger
        @dispatcher = worker.dispatcher
        @links = worker.new_connections.map { |c| Link.new(c, 0.0, BACKOFF_MIN, false) }
      end

      def run
        until @worker.stopping?
          reconnect_due
          live = @links.select { |l| l.connection.connected? }
          if live.empty?
            wait_for([], next_retry_in)
            next
          end
          worked = live.map { |link| !@worker.stopping? && grab_and_perform(link) }.any?
          sleep_until_woken(live) unless worked || @worker.stopping?
        end
      rescue StandardError => e
        @logger.error("lane #{@index} crashed: #{e.class}: #{e.message}\n#{e.backtrace&.first(10)&.join("\n")}")
        raise
      ensure
        @links.each { |l| l.connection.close }
      end

      private

      # True when a job was taken and answered and the server may have more; false once it said
      # NO_JOB. With a single job server, jobs are taken back to back until then: each
      # WORK_COMPLETE is written together with the next GRAB_JOB_UNIQ.
      def grab_and_perform(link)
        conn = link.connection
        return false unless conn.connected?

        back_to_back = @links.size == 1
        worked = false
        conn.send_packet(:GRAB_JOB_UNIQ)
        loop do
          packet = conn.read_packet(@worker.io_timeout) or raise Gearman::ConnectionError, "#{conn}: no answer to GRAB_JOB_UNIQ"
          case packet.type
          when :JOB_ASSIGN_UNIQ
            handle, function, unique, payload = packet.args
            @dispatcher.perform(Job.new(conn, handle, function, unique, payload, hold_final: back_to_back))
            worked = true
            return true unless back_to_back
            return conn.flush || true if @worker.stopping?

            conn.send_packet(:GRAB_JOB_UNIQ) # goes out with the held WORK_COMPLETE
          # The server has nothing more for us right now: go to sleep rather than ask again.
          when :NO_JOB then return false
          when :ERROR
            @logger.warn("#{conn}: server error #{packet.args[0]}: #{packet.args[1]}")
            return false
          end
          # NOOP (a wakeup from before we asked) and anything else: keep waiting for the answer.
        end
      rescue Gearman::ConnectionError, Gearman::ProtocolError => e
        lost(link, e)
        worked
      end

      def sleep_until_woken(live)
        live = live.select { |l| l.connection.connected? }
        live.each do |link|
          link.connection.send_packet(:PRE_SLEEP)
        rescue Gearman::ConnectionError => e
          lost(link, e)
        end
        live = live.select { |l| l.connection.connected? }
        timeout = [IDLE_WAKEUP, next_retry_in].min
        deadline = monotonic + timeout
        until @worker.stopping? || (remaining = deadline - monotonic) <= 0
          return if live.empty? || live.any? { |l| woken?(l) }

          ready = wait_for(live.map(&:connection), remaining)
          ready.each do |conn|
            link = live.find { |l| l.connection.equal?(conn) }
            begin
              conn.fill(0)
            rescue Gearman::ConnectionError, Gearman::ProtocolError => e
              lost(link, e)
              live.delete(link)
            end
          end
        end
      end

      # Consumes buffered packets; true once a NOOP (or a job-worthy event) arrived.
      def woken?(link)
        conn = link.connection
        while conn.pending?
          packet = conn.read_packet(0)
          return true if packet.type == :NOOP

          @logger.warn("#{conn}: server error #{packet.args[0]}: #{packet.args[1]}") if packet.type == :ERROR
        end
        false
      end

      # Waits until a connection is readable or the worker is stopped; returns the readable ones.
      def wait_for(connections, timeout)
        ios = connections.map(&:to_io).compact
        ready, = IO.select(ios + [@worker.wake_reader], nil, nil, [timeout, 0].max)
        return [] unless ready

        connections.select { |c| ready.include?(c.to_io) }
      end

      def reconnect_due
        now = monotonic
        @links.each do |link|
          next if link.connection.connected? || link.retry_at > now

          connect(link)
        end
      end

      def connect(link)
        conn = link.connection
        conn.connect
        conn.send_packet(:SET_CLIENT_ID, "#{@worker.client_id}-#{@index}")
        @dispatcher.function_names.each { |name| conn.send_packet(:CAN_DO, name) }
        @logger.info("lane #{@index}: connected to #{conn}") if link.down_reported || @index.zero?
        link.backoff = BACKOFF_MIN
        link.down_reported = false
      rescue Gearman::ConnectionError => e
        conn.close
        unless link.down_reported
          @logger.warn("lane #{@index}: #{e.message}; retrying with backoff")
          link.down_reported = true
        end
        schedule_retry(link)
      end

      def lost(link, error)
        link.connection.close
        @logger.warn("lane #{@index}: lost #{link.connection} (#{error.message}); reconnecting")
        link.down_reported = true
        schedule_retry(link)
      end

      def schedule_retry(link)
        link.retry_at = monotonic + link.backoff * (1 + (rand * 0.2))
        link.backoff = [link.backoff * 2, BACKOFF_MAX].min
      end

      def next_retry_in
        down = @links.reject { |l| l.connection.connected? }
        return IDLE_WAKEUP if down.empty?

        [down.map(&:retry_at).min - monotonic, 0.0].max
      end

      def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
