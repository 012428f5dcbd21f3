# frozen_string_literal: true

# Shared setup of the runtime's own tests: load paths, the repository root, and message code for
# the interop schema (generated once per run with `bridge generate --lang ruby`, or taken from
# $BRIDGE_RUBY_GEN when the caller already generated it).
require "minitest/autorun"
require "tmpdir"
require "fileutils"

module TestSupport
  ADAPTER_ROOT = File.expand_path("..", __dir__)
  REPO_ROOT = File.expand_path("../..", ADAPTER_ROOT)
  VECTORS = File.join(REPO_ROOT, "schemas", "testdata", "vectors.json")

  def self.generated_dir
    @generated_dir ||= ENV["BRIDGE_RUBY_GEN"] || generate
  end

  def self.generate
    dir = Dir.mktmpdir("bridge-ruby-test-gen-")
    Minitest.after_run { FileUtils.rm_rf(dir) }
    script = <<~PY
      import sys
      import bridge.schema
      from bridge.codegen import get_emitter, write_files
      schema = bridge.schema.load([sys.argv[1]], include_paths=[sys.argv[2]])
      write_files(get_emitter("ruby").generate(schema, {}), sys.argv[3])
    PY
    schemas = File.join(REPO_ROOT, "schemas")
    ok = system("python3", "-c", script, File.join(schemas, "interop", "v1", "interop.proto"), schemas, dir,
                chdir: REPO_ROOT)
    raise "could not generate the interop schema's Ruby code (is the bridge Python package installed?)" unless ok

    dir
  end
end

$LOAD_PATH.unshift(File.join(TestSupport::ADAPTER_ROOT, "lib"))
$LOAD_PATH.unshift(TestSupport.generated_dir)
require "bridge"
require "interop/v1/interop_bridge"
