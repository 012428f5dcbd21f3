<?php

/**
 * Loads the bridge PHP runtime without Composer: require this file, then your generated code's own
 * autoload.php (or register its folder with bridge_register_psr4_root()).
 *
 * Maps Bridge\Runtime\ and Bridge\V1\ (the envelope messages) to this package, and Google\Protobuf\
 * to Debian's php-google-protobuf (/usr/share/php) unless another loader provides it already.
 */

declare(strict_types=1);

if (!function_exists('bridge_register_psr4')) {
    /** Loads classes under namespace $prefix from $dir (PSR-4). */
    function bridge_register_psr4(string $prefix, string $dir): void
    {
        $dir = rtrim($dir, '/') . '/';
        $length = strlen($prefix);
        spl_autoload_register(static function (string $class) use ($prefix, $dir, $length): void {
            if (strncmp($class, $prefix, $length) !== 0) {
                return;
            }
            $file = $dir . str_replace('\\', '/', substr($class, $length)) . '.php';
            if (is_file($file)) {
                require $file;
            }
        });
    }

    /** Loads classes from a folder laid out by namespace, like protoc's --php_out (PSR-4, empty prefix). */
    function bridge_register_psr4_root(string $dir): void
    {
        bridge_register_psr4('', $dir);
    }
}

bridge_register_psr4('Bridge\\Runtime\\', __DIR__ . '/src');
bridge_register_psr4('Bridge\\V1\\', __DIR__ . '/generated/Bridge/V1');

(static function (): void {
    // Composer's vendor/google/protobuf, or the C extension, wins when present.
    if (class_exists(\Google\Protobuf\Internal\Message::class)) {
        return;
    }
    foreach (explode(PATH_SEPARATOR, get_include_path()) + [99 => '/usr/share/php'] as $root) {
        if (is_file("{$root}/Google/Protobuf/Internal/Message.php")) {
            bridge_register_psr4('Google\\Protobuf\\', "{$root}/Google/Protobuf");
            bridge_register_psr4('GPBMetadata\\Google\\Protobuf\\', "{$root}/GPBMetadata/Google/Protobuf");
            return;
        }
    }
    throw new \RuntimeException(
        'the protobuf PHP library is missing: install Debian\'s php-google-protobuf (or google/protobuf via Composer)'
    );
})();
