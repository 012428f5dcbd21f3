# frozen_string_literal: true

require_relative "test_helper"
require "json"
require "logger"
require "stringio"

# Signed jobs and replies (wire contract, section 9): every case of the shared vectors, the
# keyring's syntax, the checks of 9.2 in order, the replay cache's bound, and the dispatcher's
# refusals and signed replies.
class TestSigning < Minitest::Test
  S = Bridge::Security
  VECTORS = JSON.parse(File.read(File.join(TestSupport::REPO_ROOT, "schemas", "testdata", "signing_vectors.json")))
  KEY = ("k" * 32).b
  FUNCTION = "bridge.interop.v1.Interop.EchoBlob"

  def hex(text) = [text].pack("H*")

  def test_every_vector
    requests = VECTORS.select { |c| c.key?("request_input_hex") }
    replies = VECTORS.select { |c| c.key?("reply_input_hex") }
    assert_equal VECTORS.size, requests.size + replies.size
    assert_operator requests.size, :>=, 3
    assert_operator replies.size, :>=, 4
    requests.each do |c|
      input = S::Signing.request_input(c["function"], c["key_id"], hex(c["nonce_hex"]), c["version"], c["deadline_ms"],
                                       c["encoding"], c["metadata"], hex(c["body_hex"]))
      assert_equal c["request_input_hex"], input.unpack1("H*"), c["name"]
      mac = S::Signing.hmac_sha256(c["key_base64"].unpack1("m0"), input)
      assert_equal c["request_mac_hex"], mac.unpack1("H*"), c["name"]
    end
    replies.each do |c|
      key, nonce, payload = c["key_base64"].unpack1("m0"), hex(c["nonce_hex"]), hex(c["payload_hex"])
      input = S::Signing.reply_input(c["function"], c["key_id"], nonce, c["packet"], payload)
      assert_equal c["reply_input_hex"], input.unpack1("H*"), c["name"]
      mac = S::Signing.reply_mac(key, c["function"], c["key_id"], nonce, c["packet"], payload)
      assert_equal c["reply_mac_hex"], mac.unpack1("H*"), c["name"]
      assert_equal payload, S::Signing.split_signed(key, c["function"], c["key_id"], nonce, c["packet"], payload + mac)
      flipped = (payload + mac).dup
      flipped.setbyte(0, flipped.getbyte(0) ^ 1)
      assert_nil S::Signing.split_signed(key, c["function"], c["key_id"], nonce, c["packet"], flipped)
    end
  end

  # --- keys ------------------------------------------------------------------------------------

  def test_keyring_parses_like_the_python_reference
    text = "# rotation\n k2026 : #{['a' * 32].pack('m0')} ,\nk2025:#{['b' * 16].pack('m0')}\n\n"
    keys = S::Keyring.parse(text)
    assert_equal "k2026, k2025", keys.ids
    assert_equal "k2026", keys.signing_id
    assert_equal "a" * 32, keys.key("k2026")
    assert_nil keys.key("k1999")
    assert_equal "k2025", S::Keyring.parse(text, "k2025").signing_id
    refute_includes keys.inspect, ["a" * 32].pack("m0")
    refute_includes keys.inspect, "aaaa"
  end

  def test_keyring_refusals_never_show_the_key
    secret = ["s" * 15].pack("m0")
    {
      "k1" => "key entry 1 is not ID:BASE64",
      "k1:#{secret}" => "is 15 bytes; at least 16",
      "k1:not base64!" => "not standard base64",
      "k1:#{['s' * 16].pack('m0').chomp('=')}x" => "not standard base64",
      "k 1:#{['s' * 16].pack('m0')}" => "1 to 64 characters",
      "#{'k' * 65}:#{['s' * 16].pack('m0')}" => "1 to 64 characters",
      "k1:#{['s' * 16].pack('m0')},k1:#{['t' * 16].pack('m0')}" => "listed twice",
      "" => "at least one key",
      "# only a comment" => "at least one key"
    }.each do |text, words|
      error = assert_raises(S::KeyringError, text) { S::Keyring.parse(text) }
      assert_includes error.message, words, text
      refute_includes error.message, secret
    end
    assert_raises(S::KeyringError) { S::Keyring.parse("k1:#{['s' * 16].pack('m0')}", "k2") }
  end

  def test_keyring_from_env_and_file
    assert_nil S::Keyring.from_env({})
    line = "k1:#{['x' * 32].pack('m0')}"
    assert_equal "k1", S::Keyring.from_env({ "BRIDGE_KEYS" => line }).ids
    Dir.mktmpdir do |dir|
      path = File.join(dir, "keys")
      File.write(path, "# keys\n#{line}\nk2:#{['y' * 32].pack('m0')}\n")
      keys = S::Keyring.from_env({ "BRIDGE_KEYS_FILE" => path, "BRIDGE_SIGNING_KEY" => "k2" })
      assert_equal ["k1, k2", "k2"], [keys.ids, keys.signing_id]
      error = assert_raises(S::KeyringError) { S::Keyring.from_env({ "BRIDGE_KEYS_FILE" => "#{path}.missing" }) }
      assert_includes error.message, "BRIDGE_KEYS_FILE"
    end
  end

  # --- the checks of 9.2 -------------------------------------------------------------------------

  NOW = 1_800_000_000_000

  def fields(key: KEY, key_id: "k1", nonce: "n" * 16, deadline_ms: NOW + 30_000, body: "body", metadata: { "a" => "1" })
    input = S::Signing.request_input(FUNCTION, key_id, nonce, 1, deadline_ms, 2, metadata, body)
    { key_id: key_id, nonce: nonce, mac: S::Signing.hmac_sha256(key, input), version: 1, deadline_ms: deadline_ms,
      encoding: 2, metadata: metadata, body: body }
  end

  def verifier(capacity: 100) = S::JobVerifier.new(S::Keyring.new({ "k1" => KEY, "k0" => ("o" * 16).b }),
                                                   replay_capacity: capacity)

  def test_checks_in_order_with_the_reference_words
    v = verifier
    check = ->(handle, **f) { v.check(FUNCTION, handle, now_ms: NOW, **f) }
    assert_nil check.call("H:1", **fields)
    assert_equal "unsigned job", check.call("H:2", **fields, key_id: "", mac: "")
    assert_equal "unknown key id", check.call("H:3", **fields(key_id: "k9"))
    assert_equal "bad signature", check.call("H:4", **fields(key: ("x" * 32).b))
    assert_equal "bad signature", check.call("H:5", **fields, nonce: "short")
    assert_equal "bad signature", check.call("H:6", **fields, mac: "m" * 31)
    assert_equal "bad signature", check.call("H:7", **fields, body: "bodY")
    assert_equal "bad signature", check.call("H:8", **fields, metadata: { "a" => "2" })
    assert_equal "bad signature", check.call("H:9", **fields, deadline_ms: NOW + 30_001)
    # a bad signature comes before the deadline checks (an unsigned deadline proves nothing)
    assert_equal "bad signature", check.call("H:10", **fields(key: ("x" * 32).b, deadline_ms: 0))
    assert_equal "a signed job needs a deadline", check.call("H:11", **fields(deadline_ms: 0))
    assert_equal "expired", check.call("H:12", **fields(deadline_ms: NOW))
    assert_equal "deadline too far ahead", check.call("H:13", **fields(deadline_ms: NOW + ((86_400 + 300) * 1000) + 1))
    assert_nil check.call("H:14", **fields(nonce: "m" * 16, deadline_ms: NOW + ((86_400 + 300) * 1000)))
    assert_nil check.call("H:15", **fields(key: ("o" * 16).b, key_id: "k0")), "every listed key is accepted"
    assert_equal "replayed", check.call("H:99", **fields), "the same (key id, nonce) on another handle"
    assert_nil check.call("H:1", **fields), "the same handle again is gearmand re-running the job"
  end

  def test_reply_key_needs_a_known_key_and_a_16_byte_nonce
    v = verifier
    assert_equal KEY, v.reply_key("k1", "n" * 16)
    assert_nil v.reply_key("k1", "n" * 15)
    assert_nil v.reply_key("k9", "n" * 16)
    assert_nil v.reply_key("", "n" * 16)
  end

  def test_replay_cache_expires_and_evicts_with_a_floor
    cache = S::ReplayCache.new(3)
    assert_nil cache.admit("k", "a", "H:1", 1000, 0)
    assert_nil cache.admit("k", "b", "H:2", 3000, 0)
    assert_nil cache.admit("k", "c", "H:3", 2000, 0)
    assert_equal "replayed", cache.admit("k", "a", "H:9", 1000, 0)
    assert_equal 0, cache.floor_ms
    cache = S::ReplayCache.new(3)
    cache.admit("k", "a", "H:1", 1000, 0)
    cache.admit("k", "b", "H:2", 3000, 0)
    cache.admit("k", "c", "H:3", 2000, 0)
    # full: the earliest deadline (1000) goes and becomes the floor
    assert_nil cache.admit("k", "d", "H:4", 4000, 0)
    assert_equal [1000, 3], [cache.floor_ms, cache.size]
    assert_equal "replay cache full", cache.admit("k", "a", "H:1", 1000, 0), "the evicted nonce never runs again"
    assert_equal "replay cache full", cache.admit("k", "e", "H:5", 900, 0)
    # full again: evicting 2000 raises the floor above the new job's deadline
    assert_equal "replay cache full", cache.admit("k", "f", "H:6", 1500, 0)
    assert_equal 2000, cache.floor_ms
    # entries whose deadline passed are dropped first, making room without raising the floor
    assert_nil cache.admit("k", "g", "H:7", 9000, 3500)
    assert_equal [2000, 2], [cache.floor_ms, cache.size]
    assert_equal "replayed", cache.admit("k", "d", "H:8", 4000, 3500)
    assert_raises(ArgumentError) { S::ReplayCache.new(0) }
  end

  def test_replay_cache_heap_keeps_deadline_order
    cache = S::ReplayCache.new(50)
    deadlines = (1..200).to_a.shuffle(random: Random.new(7))
    deadlines.each_with_index { |d, i| cache.admit("k", "n#{i}", "H:#{i}", d * 10, 0) }
    assert_equal 50, cache.size
    # the 150 earliest of what was admitted went; the floor is the latest deadline evicted
    assert_operator cache.floor_ms, :<, 2000
    kept = deadlines.each_with_index.select { |d, i| cache.admit("k", "n#{i}", "H:#{i}", d * 10, 0).nil? }
    assert_equal 50, kept.size
    assert_operator kept.map(&:first).min * 10, :>, cache.floor_ms
  end

  # --- the dispatcher with keys --------------------------------------------------------------------

  V1 = Bridge::Interop::V1

  class Handler < V1::Interop::Service
    def echo_blob(request, _context) = request
  end

  class BareHandler < V1::Bare::Service
    def echo_raw(request, _context) = request
  end

  Sent = Struct.new(:packets) do
    def generation = 1
    def send_packet(type, *args, hold: false, generation: nil) = packets << [type, *args]
  end

  def dispatch(payload, function: FUNCTION, log: StringIO.new)
    dispatcher = Bridge::Dispatcher.new(logger: Logger.new(log), verifier: verifier)
    dispatcher.add_service(Handler.new).add_service(BareHandler.new)
    connection = Sent.new([])
    dispatcher.perform(Bridge::Job.new(connection, "H:x:1", function, "", payload))
    connection.packets
  end

  def signed_envelope(key: KEY, key_id: "k1", nonce: "n" * 16, deadline_ms: nil)
    deadline_ms ||= Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) + 30_000
    body = V1::Blob.encode(V1::Blob.new(data: "hi"))
    mac = S::Signing.hmac_sha256(key, S::Signing.request_input(FUNCTION, key_id, nonce, 1, deadline_ms, 1, {}, body))
    Bridge::V1::Request.encode(Bridge::V1::Request.new(version: 1, deadline_ms: deadline_ms, encoding: :PROTOBUF,
                                                       body: body, key_id: key_id, nonce: nonce, mac: mac))
  end

  def test_a_signed_job_runs_and_its_reply_is_signed
    (type, handle, payload), = dispatch(signed_envelope)
    assert_equal [:WORK_COMPLETE, "H:x:1"], [type, handle]
    frame = S::Signing.split_signed(KEY, FUNCTION, "k1", "n" * 16, :WORK_COMPLETE, payload)
    refute_nil frame, "the reply carries the reply MAC"
    assert_equal "hi", V1::Blob.decode(Bridge::Frame.parse(frame).body).data
  end

  def test_refusals_are_unauthenticated_signed_when_the_key_is_known_and_logged_once
    log = StringIO.new
    cases = {
      "unsigned job" => [Bridge::V1::Request.encode(Bridge::V1::Request.new(version: 1, body: "x")), false],
      "bad signature" => [signed_envelope(key: ("x" * 32).b), true],
      "unknown key id" => [signed_envelope(key_id: "k9"), false],
      "expired" => [signed_envelope(deadline_ms: 1), true]
    }
    cases.each do |why, (payload, signed)|
      log.truncate(0)
      log.rewind
      (type, _, data), = dispatch(payload, log: log)
      assert_equal :WORK_EXCEPTION, type
      opened = S::Signing.split_signed(KEY, FUNCTION, "k1", "n" * 16, :WORK_EXCEPTION, data)
      assert_equal signed, !opened.nil?, why
      error = Bridge::V1::Error.decode(opened || data)
      assert_equal [:UNAUTHENTICATED, "bridge.interop.v1.Interop.EchoBlob: #{why}", "Unauthenticated"],
                   [error.code, error.message, error.type]
      lines = log.string.lines
      assert_equal 1, lines.size, log.string
      assert_match(/WARN .*EchoBlob: job H:x:1 refused \(UNAUTHENTICATED\): #{why}/, lines[0])
    end
  end

  def test_a_worker_takes_keys_from_its_api_and_the_environment_and_never_shows_them
    text = "k1:#{[KEY].pack('m0')}"
    worker = Bridge::Worker.new(servers: "127.0.0.1:1", keys: text, logger: Logger.new(nil))
    assert_equal "k1", worker.keys.ids
    worker.add_service(Handler.new)
    refute_includes worker.inspect, KEY
    refute_includes worker.inspect, [KEY].pack("m0")
    worker.keys = { "k2" => ("z" * 16).b, "k1" => KEY } # rotation: the replay cache is kept
    assert_equal "k2, k1", worker.keys.ids
    worker.keys = nil
    assert_nil worker.keys
    begin
      ENV["BRIDGE_KEYS"] = text
      assert_equal "k1", Bridge::Worker.new(servers: "127.0.0.1:1", logger: Logger.new(nil)).keys.ids
      ENV["BRIDGE_KEYS"] = "k1:c2hvcnQ="
      error = assert_raises(S::KeyringError) { Bridge::Worker.new(servers: "127.0.0.1:1", logger: Logger.new(nil)) }
      refute_includes error.message, "c2hvcnQ="
    ensure
      ENV.delete("BRIDGE_KEYS")
    end
    job = Bridge::Job.new(Sent.new([]), "H:1", FUNCTION, "", "")
    job.sign_replies(KEY, "k1", "n" * 16)
    context = Bridge::Context.new(job, metadata: {}, deadline_ms: 0, encoding: :protobuf)
    refute_includes context.inspect, KEY
    assert_includes job.inspect, "signed (key id k1)"
  end

  def test_bare_jobs_cannot_be_signed
    (type, _, data), = dispatch("text", function: "interop_bare_echo_raw")
    assert_equal :WORK_EXCEPTION, type
    assert_includes data, "bare jobs cannot be signed"
  end
end
