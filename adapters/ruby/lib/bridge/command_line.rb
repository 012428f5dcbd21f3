# frozen_string_literal: true

require "optparse"

module Bridge
  # The command line every bridge worker accepts, as keyword options for Bridge.serve:
  #
  #   Interop.serve(Handler.new, **Bridge::CommandLine.parse(ARGV))
  #
  #   --servers HOST:PORT[,HOST:PORT...]   (default: $BRIDGE_SERVERS or 127.0.0.1:4730)
  #   --concurrency N                      jobs run in parallel (default 1)
  #   --max-request-bytes N                largest job payload accepted (default 64 MiB + 64 KiB)
  #   --read-timeout SECONDS               a GRAB or ECHO unanswered this long drops that server's
  #                                        connection, which reconnects (default 5)
  module CommandLine
    def self.parse(argv, program: $PROGRAM_NAME)
      options = { servers: ENV.fetch("BRIDGE_SERVERS", "127.0.0.1:4730") }
      OptionParser.new do |opts|
        opts.banner = "usage: #{File.basename(program)} [options]"
        opts.on("--servers LIST", "job servers, HOST:PORT[,HOST:PORT...]") { |v| options[:servers] = v }
        opts.on("--concurrency N", Integer, "jobs run in parallel (threads)") { |v| options[:concurrency] = v }
        opts.on("--max-request-bytes N", Integer, "largest job payload accepted") { |v| options[:max_request_bytes] = v }
        opts.on("--read-timeout SECONDS", Float, "unanswered GRAB/ECHO drops the connection") { |v| options[:read_timeout] = v }
      end.parse!(argv.dup)
      options
    end
  end
end
