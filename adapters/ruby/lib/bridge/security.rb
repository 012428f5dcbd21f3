# frozen_string_literal: true

# Signed jobs and replies (wire contract, section 9) and TLS to the job server (docs/security.md).
require_relative "security/keyring"
require_relative "security/signing"
require_relative "security/verifier"
require_relative "security/tls"
