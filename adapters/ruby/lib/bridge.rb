# frozen_string_literal: true

# bridge's Ruby runtime: serve Ruby methods as typed functions that Python (or any bridge client)
# calls over Gearman. See adapters/ruby/README.md.
require_relative "bridge/version"
require_relative "bridge/errors"
require_relative "bridge/gearman/packet"
require_relative "bridge/gearman/connection"
require_relative "bridge/codec"
require_relative "bridge/frame"
require_relative "bridge/context"
require_relative "bridge/service"
require_relative "bridge/dispatcher"
require_relative "bridge/worker"
require_relative "bridge/command_line"

module Bridge
  # Serves +handlers+ (instances of generated Service classes) until SIGTERM or SIGINT, then
  # returns once the running jobs have finished. Options: see Bridge::Worker.new.
  #
  #   Bridge.serve(MyToolkit.new, servers: "127.0.0.1:4730", concurrency: 4)
  def self.serve(*handlers, **options)
    worker = Worker.new(**options)
    handlers.each { |handler| worker.add_service(handler) }
    worker.run(trap_signals: true)
    worker
  end
end
