# frozen_string_literal: true

module Bridge
  VERSION = "0.1.0"
  # The wire-contract version this runtime implements (docs/wire-contract.md).
  WIRE_VERSION = 1
end
