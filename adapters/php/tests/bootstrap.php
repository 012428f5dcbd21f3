<?php

/**
 * Loads the runtime and the interop schema's message classes the tests use.
 *
 * BRIDGE_PHP_TEST_GEN names a folder holding `bridge generate --lang php` output for
 * schemas/interop/v1/interop.proto; without it the folder build/php/test-gen is (re)generated.
 */

declare(strict_types=1);

require __DIR__ . '/../autoload.php';

$repo = dirname(__DIR__, 3);
$gen = getenv('BRIDGE_PHP_TEST_GEN') ?: "{$repo}/build/php/test-gen";
if (!is_file("{$gen}/Bridge/Interop/V1/GPBMetadata/Interop.php")) {
    $cmd = sprintf(
        'cd %s && python3 -c %s %s 2>&1',
        escapeshellarg($repo),
        escapeshellarg(
            'import sys; from bridge.codegen import get_emitter, write_files; from bridge.schema import load; '
            . 'write_files(get_emitter("php").generate(load(["schemas/interop/v1/interop.proto"], ["schemas"]), {}), sys.argv[1])'
        ),
        escapeshellarg($gen)
    );
    exec($cmd, $output, $status);
    if ($status !== 0) {
        fwrite(STDERR, "could not generate the interop schema's PHP code:\n" . implode("\n", $output) . "\n");
        exit(1);
    }
}
bridge_register_psr4_root($gen);
\Bridge\Interop\V1\GPBMetadata\Interop::initOnce();
\Bridge\V1\GPBMetadata\Envelope::initOnce();

define('BRIDGE_REPO_ROOT', $repo);
require __DIR__ . '/RecordingSink.php';
