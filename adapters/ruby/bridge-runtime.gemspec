# frozen_string_literal: true

require_relative "lib/bridge/version"

Gem::Specification.new do |spec|
  spec.name = "bridge-runtime"
  spec.version = Bridge::VERSION
  spec.summary = "Serve Ruby methods as typed functions to Python over Gearman (bridge's Ruby runtime)"
  spec.description = <<~TEXT
    The Ruby side of bridge: a pure-Ruby Gearman worker, the bridge.v1 request/error envelope, the
    protobuf and msgpack encodings of protobuf messages, and the base that `bridge generate --lang ruby`
    builds service classes on.
  TEXT
  spec.license = "Apache-2.0"
  spec.authors = ["bridge contributors"]
  spec.required_ruby_version = ">= 3.1"
  spec.files = Dir.glob(["lib/**/*.rb", "README.md"], base: __dir__).sort # build with: gem build -C adapters/ruby
  spec.require_paths = ["lib"]
  # Debian: ruby-google-protobuf (3.21.12) and ruby-msgpack
  spec.add_dependency "google-protobuf", ">= 3.21", "< 4"
  spec.add_dependency "msgpack", ">= 1.4", "< 2"
  spec.add_development_dependency "minitest", "~> 5.15"
end
