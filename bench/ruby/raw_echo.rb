# frozen_string_literal: true

# The baseline of the Ruby shim benchmark: a minimal hand-written Gearman echo worker on the same
# socket and packet code the runtime uses (Bridge::Gearman), without the bridge layer (no envelope,
# no message decode/encode, no dispatch). One thread, one server.
#   ruby -I adapters/ruby/lib bench/ruby/raw_echo.rb HOST:PORT [FUNCTION] [--back-to-back]
# --back-to-back writes each WORK_COMPLETE together with the next GRAB_JOB_UNIQ, as the runtime
# does with a single server; without it, one write per packet (what libgearman does).
require "bridge/gearman/connection"

back_to_back = !ARGV.delete("--back-to-back").nil?
host, port = ARGV.fetch(0).split(":")
function = ARGV.fetch(1, "echo")
stopping = false
Signal.trap("TERM") { stopping = true }

conn = Bridge::Gearman::Connection.new(host, Integer(port)).connect
conn.send_packet(:CAN_DO, function)
until stopping
  conn.send_packet(:GRAB_JOB_UNIQ)
  packet = conn.read_packet(30) or abort("no answer from #{conn}")
  case packet.type
  when :JOB_ASSIGN_UNIQ
    conn.send_packet(:WORK_COMPLETE, packet.args[0], packet.args[3], hold: back_to_back)
  when :NO_JOB
    conn.send_packet(:PRE_SLEEP)
    # wait for the NOOP; wake every second to notice SIGTERM
    packet = conn.read_packet(1.0) until stopping || packet&.type == :NOOP
    packet = nil
  end
end
conn.flush
conn.close
