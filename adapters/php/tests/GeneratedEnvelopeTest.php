<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use PHPUnit\Framework\TestCase;

/**
 * generated/ holds protoc's PHP classes for schemas/bridge/v1/envelope.proto, committed so the
 * runtime works without a build step. They must be what protoc 3.21.12 makes of the current schema.
 */
final class GeneratedEnvelopeTest extends TestCase
{
    public function testCommittedEnvelopeClassesAreUpToDate(): void
    {
        $out = sys_get_temp_dir() . '/bridge-php-envelope-' . getmypid();
        mkdir($out);
        try {
            $cmd = sprintf(
                'protoc -I %s --php_out=%s bridge/v1/envelope.proto 2>&1',
                escapeshellarg(BRIDGE_REPO_ROOT . '/schemas'),
                escapeshellarg($out)
            );
            exec($cmd, $output, $status);
            self::assertSame(0, $status, "protoc failed:\n" . implode("\n", $output));
            $committed = dirname(__DIR__) . '/generated';
            $fresh = self::files($out);
            self::assertSame(array_keys($fresh), array_keys(self::files($committed)), 'the same files');
            foreach ($fresh as $path => $content) {
                self::assertSame(
                    $content,
                    file_get_contents("{$committed}/{$path}"),
                    "{$path} is stale: regenerate with `protoc -I schemas --php_out=adapters/php/generated bridge/v1/envelope.proto`"
                );
            }
        } finally {
            exec('rm -rf ' . escapeshellarg($out));
        }
    }

    /** @return array<string, string> relative path => content */
    private static function files(string $root): array
    {
        $files = [];
        $iterator = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($root, \FilesystemIterator::SKIP_DOTS));
        foreach ($iterator as $file) {
            $files[substr($file->getPathname(), strlen($root) + 1)] = (string) file_get_contents($file->getPathname());
        }
        ksort($files);
        return $files;
    }
}
