<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Waits on the connections of several job servers at once.
 *
 * Each server has its own GearmanWorker (ServerLink), and GearmanWorker::wait() watches only its
 * own connection: watching N servers in turn cost every exchange with one server a wait on each of
 * the others (27 ms per call with two servers, 57 ms with three). pecl gearman does not expose the
 * sockets, so this finds each server's socket in /proc/self/fd by its peer address and calls
 * poll(2) on all of them through FFI. Without FFI or /proc, or when a socket cannot be told apart
 * (two sockets to one server), available()/poll() say so and the worker watches servers in turn.
 *
 * @internal
 */
final class SocketPoll
{
    private const POLLIN = 0x001;
    private const POLLPRI = 0x002;
    private const AF_INET = 2;
    private const AF_INET6 = 10;

    private static \FFI|false|null $libc = null;

    /** @var array<int, array{int, string}> per link id: [fd, "socket:[inode]"] */
    private array $known = [];

    public static function available(): bool
    {
        return self::libc() !== false && is_dir('/proc/self/fd');
    }

    /**
     * Waits up to $timeoutMs until one of $links' sockets has something to read; marks those
     * links awake. Returns false when a socket could not be found (the caller waits its own way).
     *
     * @param list<ServerLink> $links the connected links
     */
    public function poll(array $links, int $timeoutMs): bool
    {
        $libc = self::libc();
        if ($libc === false) {
            return false;
        }
        $fds = $this->fds($links);
        if ($fds === null) {
            return false;
        }
        $n = count($fds);
        $set = $libc->new("struct pollfd[{$n}]");
        foreach (array_values($fds) as $i => $fd) {
            $set[$i]->fd = $fd;
            $set[$i]->events = self::POLLIN | self::POLLPRI;
        }
        if ($libc->poll($set, $n, $timeoutMs) <= 0) {
            return true;  // timeout, or a signal (EINTR): the loop looks at its stop flag
        }
        $i = 0;
        foreach (array_keys($fds) as $index) {
            $revents = $set[$i++]->revents;
            if ($revents !== 0) {
                $links[$index]->awake(($revents & (self::POLLIN | self::POLLPRI)) !== 0);
            }
        }
        return true;
    }

    /**
     * The socket of each link, by index in $links, or null when one is not found exactly once.
     *
     * @param list<ServerLink> $links
     * @return array<int, int>|null
     */
    private function fds(array $links): ?array
    {
        $fds = [];
        $missing = false;
        foreach ($links as $index => $link) {
            $known = $this->known[spl_object_id($link)] ?? null;
            if ($known !== null && @readlink("/proc/self/fd/{$known[0]}") === $known[1]) {
                $fds[$index] = $known[0];
            } else {
                $missing = true;
            }
        }
        if (!$missing) {
            return $fds;
        }
        $this->rescan($links);
        $fds = [];
        foreach ($links as $index => $link) {
            $known = $this->known[spl_object_id($link)] ?? null;
            if ($known === null) {
                return null;
            }
            $fds[$index] = $known[0];
        }
        return $fds;
    }

    /** @param list<ServerLink> $links */
    private function rescan(array $links): void
    {
        $libc = self::libc();
        assert($libc !== false);
        $portShared = count(array_unique(array_map(static fn (ServerLink $l): int => $l->port, $links))) < count($links);
        $found = [];
        foreach (@scandir('/proc/self/fd') ?: [] as $entry) {
            $target = ctype_digit($entry) ? @readlink("/proc/self/fd/{$entry}") : false;
            if ($target === false || !str_starts_with($target, 'socket:')) {
                continue;
            }
            $peer = self::peer($libc, (int) $entry);
            if ($peer === null) {
                continue;
            }
            foreach ($links as $link) {
                if ($peer[1] === $link->port && (!$portShared || in_array($peer[0], $link->addresses(), true))) {
                    $found[spl_object_id($link)][] = [(int) $entry, $target];
                }
            }
        }
        $this->known = [];
        foreach ($found as $id => $sockets) {
            if (count($sockets) === 1) {
                $this->known[$id] = $sockets[0];
            }
        }
    }

    /** @return array{string, int}|null the peer's address (inet_ntop form) and port */
    private static function peer(\FFI $libc, int $fd): ?array
    {
        $address = $libc->new('unsigned char[128]');
        $length = $libc->new('unsigned int');
        $length->cdata = 128;
        if ($libc->getpeername($fd, \FFI::addr($address[0]), \FFI::addr($length)) !== 0) {
            return null;
        }
        $family = $address[0] | $address[1] << 8;  // sa_family, host byte order (little-endian)
        $port = $address[2] << 8 | $address[3];    // network byte order
        $raw = \FFI::string($address, 24);
        return match ($family) {
            self::AF_INET => [(string) inet_ntop(substr($raw, 4, 4)), $port],
            self::AF_INET6 => [(string) inet_ntop(substr($raw, 8, 16)), $port],
            default => null,
        };
    }

    private static function libc(): \FFI|false
    {
        if (self::$libc === null) {
            try {
                self::$libc = extension_loaded('ffi') && PHP_OS_FAMILY === 'Linux'
                    ? \FFI::cdef(
                        'struct pollfd { int fd; short events; short revents; };'
                        . 'int poll(struct pollfd *fds, unsigned long nfds, int timeout);'
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
