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
    private const SOL_SOCKET = 1;
    private const SO_LINGER = 13;
    /** The longest wait while a server's connect is pending: its socket cannot be found (it has
     * no peer yet), so the loop looks at it this often instead. */
    private const CONNECTING_POLL_MS = 20;

    private static \FFI|false|null $libc = null;

    /** @var array<int, array{int, string}> per link id: [fd, "socket:[inode]"] */
    private array $known = [];
    /** Whether two of the worker's servers share a port (then a socket is told by address too). */
    private readonly bool $portShared;

    /** @param list<ServerLink> $all every server of the worker, not only the ones polled at a time */
    public function __construct(array $all)
    {
        $ports = array_map(static fn (ServerLink $l): int => $l->port, $all);
        $this->portShared = count(array_unique($ports)) < count($ports);
    }

    public static function available(): bool
    {
        return self::libc() !== false && is_dir('/proc/self/fd');
    }

    /**
     * Waits up to $timeoutMs until one of $links' sockets has something to read; marks those
     * links awake. Returns false when a socket could not be found (the caller waits its own way).
     * A link whose server has not spoken yet may still be connecting (no peer address): it is left
     * out, and the wait is cut to CONNECTING_POLL_MS so step() looks at it again soon.
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
        if (count($fds) < count($links)) {
            $timeoutMs = min($timeoutMs, self::CONNECTING_POLL_MS);
        }
        $n = count($fds);
        if ($n === 0) {
            usleep($timeoutMs * 1000);
            return true;
        }
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
     * A link whose server has not spoken yet and whose socket is not found is left out.
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
            if ($known !== null) {
                $fds[$index] = $known[0];
            } elseif ($link->heard()) {
                return null;
            }
        }
        return $fds;
    }

    /**
     * Turns SO_LINGER off on $link's sockets (libgearman sets 10 s), so closing one whose bytes the
     * server has not taken returns at once instead of blocking the process. Without FFI: nothing.
     */
    public static function unlinger(ServerLink $link): void
    {
        $libc = self::libc();
        if ($libc === false || !is_dir('/proc/self/fd')) {
            return;
        }
        $off = $libc->new('int[2]');  // struct linger { int l_onoff; int l_linger; }: {0, 0}
        foreach (array_keys(self::sockets($libc)) as $fd) {
            $peer = self::peer($libc, $fd);
            if ($peer !== null && $peer[1] === $link->port && in_array($peer[0], $link->addresses(), true)) {
                $libc->setsockopt($fd, self::SOL_SOCKET, self::SO_LINGER, \FFI::addr($off[0]), 8);
            }
        }
    }

    /** @return array<int, string> this process's sockets: fd => "socket:[inode]" */
    private static function sockets(\FFI $libc): array
    {
        $sockets = [];
        foreach (@scandir('/proc/self/fd') ?: [] as $entry) {
            $target = ctype_digit($entry) ? @readlink("/proc/self/fd/{$entry}") : false;
            if ($target !== false && str_starts_with($target, 'socket:')) {
                $sockets[(int) $entry] = $target;
            }
        }
        return $sockets;
    }

    /** @param list<ServerLink> $links */
    private function rescan(array $links): void
    {
        $libc = self::libc();
        assert($libc !== false);
        $found = [];
        foreach (self::sockets($libc) as $fd => $target) {
            $peer = self::peer($libc, $fd);
            if ($peer === null) {
                continue;
            }
            foreach ($links as $link) {
                if ($peer[1] === $link->port && (!$this->portShared || in_array($peer[0], $link->addresses(), true))) {
                    $found[spl_object_id($link)][] = [$fd, $target];
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
                        . 'int getpeername(int fd, void *address, unsigned int *length);'
                        . 'int setsockopt(int fd, int level, int name, const void *value, unsigned int length);',
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
