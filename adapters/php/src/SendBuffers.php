<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Widens the send buffer of this process's job-server connections before a large reply.
 *
 * libgearman pins each connection's SO_SNDBUF to 32 KiB (64 KiB in the kernel). On loopback one
 * TCP segment is 64 KiB, so every segment fills the buffer and waits for gearmand's delayed ACK
 * (40 ms): a 16 MiB reply took 9 s. pecl gearman does not expose the socket, so this finds it in
 * /proc/self/fd, checks its peer is one of the job servers, and raises SO_SNDBUF through FFI
 * (bounded by net.core.wmem_max). Without FFI or /proc it does nothing: replies stay correct, only
 * slow.
 *
 * @internal
 */
final class SendBuffers
{
    private const WANTED_BYTES = 4 << 20;
    private const SOL_SOCKET = 1;
    private const SO_SNDBUF = 7;
    private const AF_INET = 2;
    private const AF_INET6 = 10;

    private static \FFI|false|null $libc = null;
    /** @var array<string, true> socket inodes already widened */
    private static array $widened = [];

    /** @param list<int> $ports the job servers' ports */
    public static function widen(array $ports): void
    {
        $libc = self::libc();
        if ($libc === false) {
            return;
        }
        foreach (@scandir('/proc/self/fd') ?: [] as $fd) {
            $link = ctype_digit($fd) ? @readlink("/proc/self/fd/{$fd}") : false;
            if ($link === false || !str_starts_with($link, 'socket:') || isset(self::$widened[$link])) {
                continue;
            }
            if (!in_array(self::peerPort($libc, (int) $fd), $ports, true)) {
                continue;
            }
            $size = $libc->new('int');
            $size->cdata = self::WANTED_BYTES;
            $libc->setsockopt((int) $fd, self::SOL_SOCKET, self::SO_SNDBUF, \FFI::addr($size), 4);
            self::$widened[$link] = true;
        }
    }

    private static function peerPort(\FFI $libc, int $fd): ?int
    {
        $address = $libc->new('unsigned char[128]');
        $length = $libc->new('unsigned int');
        $length->cdata = 128;
        if ($libc->getpeername($fd, \FFI::addr($address[0]), \FFI::addr($length)) !== 0) {
            return null;
        }
        $family = $address[0] | $address[1] << 8;  // sa_family, host byte order (little-endian)
        if ($family !== self::AF_INET && $family !== self::AF_INET6) {
            return null;
        }
        return $address[2] << 8 | $address[3];  // sin_port / sin6_port, network byte order
    }

    private static function libc(): \FFI|false
    {
        if (self::$libc === null) {
            try {
                self::$libc = extension_loaded('ffi') && PHP_OS_FAMILY === 'Linux'
                    ? \FFI::cdef(
                        'int setsockopt(int fd, int level, int name, const void *value, unsigned int length);'
                        . 'int getpeername(int fd, void *address, unsigned int *length);',
                        'libc.so.6'
                    )
                    : false;
            } catch (\Throwable) {
                self::$libc = false;  // FFI disabled by ffi.enable, or no glibc
            }
        }
        return self::$libc;
    }
}
