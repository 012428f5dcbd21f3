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

  # An entry written the wrong way round (KEY:ID), a key where an id is due, a key given as
  # BRIDGE_SIGNING_KEY: the error names the entry by its number, never by the key.
  def test_keyring_errors_never_echo_a_key_given_in_the_wrong_place
    key = ["s" * 16].pack("m0")
    {
      ["#{key}:k1", nil] => "key entry 1: not standard base64",
      ["k0:#{['t' * 16].pack('m0')},#{key}:#{key}", nil] => "key entry 2: the id must be 1 to 64 characters",
      ["k1:#{key}", key] => "the signing key id (not shown: it looks like a key) is not among the keys (k1); " \
                            "BRIDGE_SIGNING_KEY names a key id, not a key",
      ["k1:#{key}", "k2"] => "the signing key id \"k2\" is not among the keys (k1)",
      ["#{'a' * 21}:#{key}", "k2"] => "the signing key id \"k2\""
    }.each do |(text, signing), words|
      error = assert_raises(S::KeyringError, text) { S::Keyring.parse(text, signing) }
      assert_includes error.message, words
      refute_includes error.message, key[0, 22]
    end
    error = assert_raises(S::KeyringError) do
      S::Keyring.from_env({ "BRIDGE_KEYS" => "#{key}:k1", "BRIDGE_SIGNING_KEY" => key })
    end
    refute_includes error.message, key[0, 22]
    error = assert_raises(S::KeyringError) do
      S::Keyring.from_env({ "BRIDGE_KEYS" => "k1:#{key}", "BRIDGE_SIGNING_KEY" => key })
    end
    refute_includes error.message, key[0, 22]
    # a short valid id is shown; a longer one (a key without padding or symbols could be one) not
    assert_includes assert_raises(S::KeyringError) { S::Keyring.new({ "k1" => "short" }) }.message, "key \"k1\" is 5 bytes"
    long = "A" * 21
    message = assert_raises(S::KeyringError) { S::Keyring.new({ "k1" => KEY, long => "short" }) }.message
    assert_equal "key entry 2 is 5 bytes; at least 16 are needed", message
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
    check = ->(**f) { v.check(FUNCTION, now_ms: NOW, **f) }
    assert_nil check.call(**fields)
    assert_equal "unsigned job", check.call(**fields, key_id: "", mac: "")
    assert_equal "unknown key id", check.call(**fields(key_id: "k9"))
    assert_equal "bad signature", check.call(**fields(key: ("x" * 32).b))
    assert_equal "bad signature", check.call(**fields, nonce: "short")
    assert_equal "bad signature", check.call(**fields, mac: "m" * 31)
    assert_equal "bad signature", check.call(**fields, body: "bodY")
    assert_equal "bad signature", check.call(**fields, metadata: { "a" => "2" })
    assert_equal "bad signature", check.call(**fields, deadline_ms: NOW + 30_001)
    # a bad signature comes before the deadline checks (an unsigned deadline proves nothing)
    assert_equal "bad signature", check.call(**fields(key: ("x" * 32).b, deadline_ms: 0))
    assert_equal "a signed job needs a deadline", check.call(**fields(deadline_ms: 0))
    assert_equal "expired", check.call(**fields(deadline_ms: NOW))
    assert_equal "deadline too far ahead", check.call(**fields(deadline_ms: NOW + ((86_400 + 300) * 1000) + 1))
    assert_nil check.call(**fields(nonce: "m" * 16, deadline_ms: NOW + ((86_400 + 300) * 1000)))
    assert_nil check.call(**fields(key: ("o" * 16).b, key_id: "k0")), "every listed key is accepted"
    assert_equal "replayed", check.call(**fields), "the same (key id, nonce) again"
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
    assert_nil cache.admit("k", "a", 1000, 0)
    assert_nil cache.admit("k", "b", 3000, 0)
    assert_nil cache.admit("k", "c", 2000, 0)
    assert_equal "replayed", cache.admit("k", "a", 1000, 0)
    assert_equal 0, cache.floor_ms
    cache = S::ReplayCache.new(3)
    cache.admit("k", "a", 1000, 0)
    cache.admit("k", "b", 3000, 0)
    cache.admit("k", "c", 2000, 0)
    # full: the earliest deadline (1000) goes and becomes the floor
    assert_nil cache.admit("k", "d", 4000, 0)
    assert_equal [1000, 3], [cache.floor_ms, cache.size]
    assert_equal "replay cache full", cache.admit("k", "a", 1000, 0), "the evicted nonce never runs again"
    assert_equal "replay cache full", cache.admit("k", "e", 900, 0)
    # full again: evicting 2000 raises the floor above the new job's deadline
    assert_equal "replay cache full", cache.admit("k", "f", 1500, 0)
    assert_equal 2000, cache.floor_ms
    # entries whose deadline passed are dropped first, making room without raising the floor
    assert_nil cache.admit("k", "g", 9000, 3500)
    assert_equal [2000, 2], [cache.floor_ms, cache.size]
    assert_equal "replayed", cache.admit("k", "d", 4000, 3500)
    assert_raises(ArgumentError) { S::ReplayCache.new(0) }
  end

  def test_replay_cache_heap_keeps_deadline_order
    cache = S::ReplayCache.new(50)
    deadlines = (1..200).to_a.shuffle(random: Random.new(7))
    deadlines.each_with_index { |d, i| cache.admit("k", "n#{i}", d * 10, 0) }
    assert_equal 50, cache.size
    # the 150 earliest of what was admitted went; the floor is the latest deadline evicted
    assert_operator cache.floor_ms, :<, 2000
    # what is still held is a replay; what went is at or below the floor
    answers = deadlines.each_with_index.map { |d, i| cache.admit("k", "n#{i}", d * 10, 0) }
    assert_equal({ "replayed" => 50, "replay cache full" => 150 }, answers.tally)
    kept = deadlines.zip(answers).select { |_, answer| answer == "replayed" }
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

  def dispatcher(log: StringIO.new, capacity: 100)
    Bridge::Dispatcher.new(logger: Logger.new(log), verifier: verifier(capacity: capacity))
                      .add_service(Handler.new).add_service(BareHandler.new)
  end

  def dispatch(payload, function: FUNCTION, log: StringIO.new, dispatcher: dispatcher(log: log))
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
      assert_match(/WARN .* job failed function=#{FUNCTION} handle=H:x:1 encoding=protobuf bytes=\d+ seconds=\S+ #{""
                   }outcome=UNAUTHENTICATED message="refused: #{why}( \(key id \\"k\d\\"\))?"$/, lines[0])
    end
  end

  # The same job handle proves nothing (a restarted gearmand, or another one on a host of the
  # same name, gives out the same handles): the second run of a captured job is refused.
  def test_the_same_signed_job_on_the_same_handle_is_a_replay
    log = StringIO.new
    worker = dispatcher(log: log)
    job = signed_envelope
    (type, handle, payload), = dispatch(job, dispatcher: worker)
    assert_equal [:WORK_COMPLETE, "H:x:1"], [type, handle]
    refute_nil S::Signing.split_signed(KEY, FUNCTION, "k1", "n" * 16, :WORK_COMPLETE, payload)
    (type, handle, data), = dispatch(job, dispatcher: worker)
    assert_equal [:WORK_EXCEPTION, "H:x:1"], [type, handle]
    error = Bridge::V1::Error.decode(S::Signing.split_signed(KEY, FUNCTION, "k1", "n" * 16, :WORK_EXCEPTION, data))
    assert_equal [:UNAUTHENTICATED, "bridge.interop.v1.Interop.EchoBlob: replayed"], [error.code, error.message]
    assert_match(/outcome=UNAUTHENTICATED message="refused: replayed/, log.string)
  end

  # A full replay cache refuses a well-signed job it cannot vouch for: RESOURCE_EXHAUSTED, not
  # UNAUTHENTICATED, in the answer and in the log line; still a signed refusal.
  def test_a_full_replay_cache_is_resource_exhausted
    log = StringIO.new
    worker = dispatcher(log: log, capacity: 1)
    later = Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) + 60_000
    (type,), = dispatch(signed_envelope(nonce: "a" * 16, deadline_ms: later), dispatcher: worker)
    assert_equal :WORK_COMPLETE, type
    # the cache holds one entry: admitting this one evicts the first, whose deadline is later
    (type, _, data), = dispatch(signed_envelope(nonce: "b" * 16, deadline_ms: later - 1000), dispatcher: worker)
    assert_equal :WORK_EXCEPTION, type
    opened = S::Signing.split_signed(KEY, FUNCTION, "k1", "b" * 16, :WORK_EXCEPTION, data)
    refute_nil opened, "a refusal of a job naming a known key is signed"
    error = Bridge::V1::Error.decode(opened)
    assert_equal [:RESOURCE_EXHAUSTED, "bridge.interop.v1.Interop.EchoBlob: replay cache full", "ResourceExhausted"],
                 [error.code, error.message, error.type]
    lines = log.string.lines.grep(/refused/)
    assert_equal 1, lines.size, log.string
    assert_match(/WARN .*EchoBlob handle=H:x:1 .* outcome=RESOURCE_EXHAUSTED #{""
                 }message="refused: replay cache full \(key id \\"k1\\"\)"$/, lines[0])
  end

  # The key id is the caller's choice: no raw line break, control or bidi character of it
  # reaches the log line; it is shown escaped.
  def test_the_key_id_in_a_log_line_is_escaped
    log = StringIO.new
    hostile = "k9\nW, [2026-11-30] WARN -- : forged\u0085\u2028\u202E\e[2J"
    (type,), = dispatch(signed_envelope(key_id: hostile), log: log)
    assert_equal :WORK_EXCEPTION, type
    lines = log.string.lines
    assert_equal 1, lines.size, log.string
    line = lines[0]
    # quoted twice: as the key id inside the message, and the message in the line
    assert_includes line, 'message="refused: unknown key id (key id \\"k9\\\\nW, [2026-11-30] WARN -- : forged' \
                          '\\\\u0085\\\\u2028\\\\u202E\\\\e[2J\\")"'
    ["\n", "\u0085", "\u2028", "\u202E", "\e"].each { |c| refute_includes line.chomp, c }
    assert_equal '"\\xFFk"', S.log_quote("\xFFk".b)
    assert_equal "\"#{'x' * 64}\"", S.log_quote("x" * 100)
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
