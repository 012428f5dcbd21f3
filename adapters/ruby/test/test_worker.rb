# frozen_string_literal: true

require_relative "test_helper"
require "logger"
require "socket"
require "timeout"

# The worker against real gearmand processes: several servers, reconnect after a restart, the
# graceful stop, a malformed job followed by a good one.
class TestWorker < Minitest::Test
  V1 = Bridge::Interop::V1
  G = Bridge::Gearman
  GEARMAND = "/usr/sbin/gearmand"

  # One gearmand on a loopback port; #restart keeps the port.
  class Gearmand
    attr_reader :port

    def initialize
      @port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
      @dir = Dir.mktmpdir("bridge-ruby-gearmand-")
      start
    end

    def address = "127.0.0.1:#{@port}"

    def start
      @pid = Process.spawn(GEARMAND, "--listen", "127.0.0.1", "--port", @port.to_s, "--threads", "1",
                           "--log-file", File.join(@dir, "log"), "--pid-file", File.join(@dir, "pid"),
                           "--config-file", "/dev/null", %i[out err] => File::NULL)
      Timeout.timeout(10) do
        TCPSocket.new("127.0.0.1", @port).close
      rescue SystemCallError
        sleep 0.05
        retry
      end
    end

    def stop
      return unless @pid

      Process.kill(:KILL, @pid)
      Process.wait(@pid)
      @pid = nil
    end

    def close
      stop
      FileUtils.rm_rf(@dir)
    end
  end

  # A minimal Gearman client: submits one job and waits for its end.
  def call(server, function, payload, timeout: 10)
    socket = TCPSocket.new("127.0.0.1", server.port)
    socket.write(G.encode(:OPTION_REQ, "exceptions"))
    socket.write(G.encode(:SUBMIT_JOB, function, "", payload))
    decoder = G::Decoder.new(expect: G::MAGIC_RES)
    deadline = Time.now + timeout
    loop do
      IO.select([socket], nil, nil, deadline - Time.now) or flunk("no answer to #{function} within #{timeout} s")
      decoder.feed(socket.readpartial(65_536)).each do |packet|
        next unless %i[WORK_COMPLETE WORK_EXCEPTION WORK_FAIL].include?(packet.type)

        # a reply frame's body (wire contract section 3); an Error as it is
        return [packet.type, packet.type == :WORK_COMPLETE ? Bridge::Frame.parse(packet.args.last).body : packet.args.last]
      end
    end
  ensure
    socket&.close
  end

  def request(message, encoding: :PROTOBUF)
    body = Bridge::Codec.encode(message, encoding.downcase)
    Bridge::V1::Request.encode(Bridge::V1::Request.new(version: 1, encoding: encoding, body: body))
  end

  class Handler < V1::Interop::Service
    def echo_blob(request, _context) = request

    def sleep_rpc(request, _context)
      sleep(request.millis / 1000.0)
      V1::SleepReply.new(slept_millis: request.millis, language: "ruby")
    end
  end

  def start_worker(servers, concurrency: 2)
    worker = Bridge::Worker.new(servers: servers, concurrency: concurrency, logger: Logger.new(nil),
                                io_timeout: 5.0).add_service(Handler.new)
    thread = Thread.new { worker.run }
    [worker, thread]
  end

  def setup
    @servers = [Gearmand.new, Gearmand.new]
  end

  def teardown
    @worker&.stop
    @thread&.join(10)
    @servers.each(&:close)
  end

  def blob(text) = V1::Blob.new(data: "\0\xff#{text}".b, text: "✓ #{text}")

  def test_serves_every_server_both_encodings
    @worker, @thread = start_worker(@servers.map(&:address).join(","))
    @servers.each_with_index do |server, i|
      %i[PROTOBUF MSGPACK].each do |encoding|
        type, data = call(server, "bridge.interop.v1.Interop.EchoBlob", request(blob(i.to_s), encoding: encoding))
        assert_equal :WORK_COMPLETE, type
        assert_equal blob(i.to_s), Bridge::Codec.decode(V1::Blob, data, encoding.downcase)
      end
    end
  end

  def test_a_malformed_job_is_answered_and_the_next_one_served
    @worker, @thread = start_worker(@servers[0].address, concurrency: 1)
    type, data = call(@servers[0], "bridge.interop.v1.Interop.EchoBlob", "\xff\xfe garbage".b)
    assert_equal :WORK_EXCEPTION, type
    assert_equal :INVALID_ARGUMENT, Bridge::V1::Error.decode(data).code
    assert_equal :WORK_COMPLETE, call(@servers[0], "bridge.interop.v1.Interop.EchoBlob", request(blob("ok")))[0]
  end

  def test_reconnects_after_the_server_restarts
    @worker, @thread = start_worker(@servers[0].address)
    assert_equal :WORK_COMPLETE, call(@servers[0], "bridge.interop.v1.Interop.EchoBlob", request(blob("a")))[0]
    @servers[0].stop
    sleep 0.3
    @servers[0].start
    type, data = call(@servers[0], "bridge.interop.v1.Interop.EchoBlob", request(blob("b")), timeout: 15)
    assert_equal :WORK_COMPLETE, type
    assert_equal blob("b"), V1::Blob.decode(data)
  end

  def test_stop_finishes_the_running_job_then_returns
    @worker, @thread = start_worker(@servers[0].address, concurrency: 1)
    result = Thread.new { call(@servers[0], "bridge.interop.v1.Interop.Sleep", request(V1::SleepRequest.new(millis: 700))) }
    sleep 0.3 # the job is running
    @worker.stop
    type, data = result.value
    assert_equal :WORK_COMPLETE, type
    assert_equal 700, V1::SleepReply.decode(data).slept_millis
    assert @thread.join(5), "the worker did not return after stop"
  end

  def test_sigterm_in_a_worker_process_finishes_the_job_and_exits_0
    script = <<~RUBY
      require "interop/v1/interop_bridge"
      class Sleeper < Bridge::Interop::V1::Interop::Service
        def sleep_rpc(request, _context)
          sleep(request.millis / 1000.0)
          Bridge::Interop::V1::SleepReply.new(slept_millis: request.millis)
        end
      end
      Bridge::Interop::V1::Interop.serve(Sleeper.new, servers: ARGV[0], logger: Logger.new(nil))
    RUBY
    pid = Process.spawn("ruby", "-I", TestSupport.generated_dir, "-I", File.join(TestSupport::ADAPTER_ROOT, "lib"),
                        "-e", script, @servers[0].address)
    result = Thread.new { call(@servers[0], "bridge.interop.v1.Interop.Sleep", request(V1::SleepRequest.new(millis: 800))) }
    Timeout.timeout(15) { sleep 0.05 until running_jobs(@servers[0]).positive? }
    Process.kill(:TERM, pid)
    type, data = result.value
    assert_equal :WORK_COMPLETE, type
    assert_equal 800, V1::SleepReply.decode(data).slept_millis
    _, status = Timeout.timeout(10) { Process.wait2(pid) }
    assert status.success?, "exit status #{status.inspect}"
  ensure
    Process.kill(:KILL, pid) if pid && !status
  end

  # RUNNING column of the admin protocol's status for the Sleep function.
  def running_jobs(server)
    TCPSocket.open("127.0.0.1", server.port) do |s|
      s.write("status\n")
      lines = []
      lines << s.gets.chomp until lines.last == "."
      row = lines.find { |l| l.start_with?("bridge.interop.v1.Interop.Sleep\t") }
      row ? row.split("\t")[2].to_i : 0
    end
  end

  def test_jobs_run_in_parallel
    @worker, @thread = start_worker(@servers[0].address, concurrency: 4)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    calls = Array.new(4) do
      Thread.new { call(@servers[0], "bridge.interop.v1.Interop.Sleep", request(V1::SleepRequest.new(millis: 500)))[0] }
    end
    assert_equal [:WORK_COMPLETE] * 4, calls.map(&:value)
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 1.5
  end

  # One job slot, two servers: 30 queued jobs of 60 ms on the first do not keep the slot from a
  # call through the second (slots go to the link waiting longest).
  def test_a_busy_server_does_not_starve_the_other
    @worker, @thread = start_worker(@servers.map(&:address).join(","), concurrency: 1)
    assert_equal :WORK_COMPLETE, call(@servers[1], "bridge.interop.v1.Interop.EchoBlob", request(blob("warm")))[0]
    queue = TCPSocket.new("127.0.0.1", @servers[0].port)
    30.times do |i|
      queue.write(G.encode(:SUBMIT_JOB_BG, "bridge.interop.v1.Interop.Sleep", "bg-#{i}", request(V1::SleepRequest.new(millis: 60))))
    end
    sleep 0.3 # the worker is busy with the first server's queue (30 x 60 ms = 1.8 s)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    assert_equal :WORK_COMPLETE, call(@servers[1], "bridge.interop.v1.Interop.EchoBlob", request(blob("b")))[0]
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    assert_operator elapsed, :<, 0.9, "the second server's call waited #{elapsed.round(2)} s for the first one's queue"
  ensure
    queue&.close
  end

  def test_echo_round_trip_on_a_connection
    connection = G::Connection.new("127.0.0.1", @servers[0].port).connect
    assert connection.echo("ping\0✓".b, timeout: 5)
  ensure
    connection&.close
  end

  def test_a_held_packet_goes_out_with_the_next_one
    connection = G::Connection.new("127.0.0.1", @servers[0].port).connect
    connection.send_packet(:ECHO_REQ, "held", hold: true)
    assert_nil connection.read_packet(0.3), "a held packet is not sent by itself"
    connection.send_packet(:ECHO_REQ, "next")
    assert_equal %w[held next], Array.new(2) { connection.read_packet(5).args[0] }
    connection.send_packet(:ECHO_REQ, "flushed", hold: true)
    connection.flush
    assert_equal "flushed", connection.read_packet(5).args[0]
  ensure
    connection&.close
  end

  # A server that stops reading (frozen, cut off) while a job's items are written: the write
  # gives up after io_timeout without progress and closes the connection; the job's later
  # packets fail at once, also after the connection was made again.
  def test_a_write_the_server_does_not_read_closes_the_connection_after_io_timeout
    deaf = TCPServer.new("127.0.0.1", 0) # accepts (the kernel does) and never reads
    connection = G::Connection.new("127.0.0.1", deaf.addr[1], io_timeout: 0.5).connect
    job = Bridge::Job.new(connection, "H:1", "f", "", "")
    job.frame_replies(:msgpack, 0)
    item = "x".b * (1 << 20)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    error = assert_raises(G::ConnectionError) { 200.times { job.send_item(item) } }
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    assert_match(/read nothing/, error.message)
    assert_operator elapsed, :<, 3.0, "a write stalled #{elapsed.round(2)} s with io_timeout 0.5"
    refute connection.connected?, "the stalled connection is closed"
    connection.connect
    assert_raises(G::ConnectionError) { job.complete_stream }
    connection.send_packet(:ECHO_REQ, "a new job's packets go out")
  ensure
    connection&.close
    deaf&.close
  end

  def test_server_addresses
    assert_equal [["a", 1, false], ["b", 4730, false], ["::1", 9, false]],
                 Bridge::Worker.parse_servers("a:1, b,[::1]:9").map(&:to_a)
    servers = Bridge::Worker.parse_servers(["tls://a:4731,TCP://b", "TLS://[::1]"])
    assert_equal [["a", 4731, true], ["b", 4730, false], ["::1", 4730, true]], servers.map(&:to_a)
    assert_equal "tls://a:4731,b:4730,tls://[::1]:4730", servers.join(",")
    assert_raises(ArgumentError) { Bridge::Worker.parse_servers("") }
    assert_raises(ArgumentError) { Bridge::Worker.parse_servers("a:x") }
    assert_raises(ArgumentError) { Bridge::Worker.parse_servers("http://a:1") }
    assert_raises(ArgumentError) { Bridge::Worker.parse_servers("tls://") }
  end

  def test_tls_settings_are_checked_when_the_worker_is_made
    error = assert_raises(Bridge::Security::TlsError) do
      Bridge::Worker.new(servers: "tls://127.0.0.1:1", tls: { ca: "/nonexistent/ca.pem" })
    end
    assert_includes error.message, "/nonexistent/ca.pem"
    assert_raises(Bridge::Security::TlsError) { Bridge::Security::TlsConfig.new(key: "k.pem") }
    # plain servers only: TLS settings are not needed, nor read
    Bridge::Worker.new(servers: "127.0.0.1:1", tls: { ca: "/nonexistent/ca.pem" })
  end
end
