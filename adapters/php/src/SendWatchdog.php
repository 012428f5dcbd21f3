<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Cuts a job server connection whose unsent reply bytes have not moved for the read timeout.
 *
 * libgearman sends a job's packets (WORK_DATA, WORK_COMPLETE ...) in a loop that retries on every
 * timeout (_job_send: `while (ret == IO_WAIT || ret == TIMEOUT)`): a server that stops reading
 * (frozen: TCP up, its receive buffer full) kept the call, the job, the process and SIGTERM stuck
 * forever, and every other job server unserved. PHP code cannot run while that loop runs, so a
 * job that has sent enough to fill the socket's buffers forks a watchdog process, which inherits
 * the socket. It watches the bytes still queued on it (SIOCOUTQ): a healthy gearmand takes them
 * continuously, so a queue that is not empty and has not moved for the read timeout (1 s once a
 * SIGTERM waits, pending in the worker while the job runs) means the server stopped reading. The
 * watchdog then resets the connection (SO_LINGER 0, shutdown): the stuck send fails at once, the
 * job ends there (gearmand re-queues it; nothing more could arrive anyway) and the worker goes
 * back to serving the other servers. Without pcntl/posix/FFI or /proc it does nothing.
 *
 * @internal
 */
final class SendWatchdog
{
    /** A job that has sent this much may find the socket's buffers full. */
    public const ARM_BYTES = 64 * 1024;
    private const CHECK_MS = 50;
    private const STOPPING_MS = 1000;
    private const SOL_SOCKET = 1;
    private const SO_LINGER = 13;
    private const SHUT_RDWR = 2;
    private const SIOCOUTQ = 0x5411;
    private const AF_INET = 2;
    private const AF_INET6 = 10;
    /** SIGTERM (15) and SIGINT (2) in /proc's pending-signal masks. */
    private const STOP_SIGNALS = (1 << 14) | (1 << 1);

    private static \FFI|false|null $libc = null;

    private ?int $pid = null;
    private bool $armed = false;
    private int $sent = 0;

    public function __construct(private readonly ServerLink $link, private readonly int $readTimeoutMs)
    {
    }

    /** Called before each packet of the job: forks the watchdog once the job has sent enough. */
    public function beforeSend(int $bytes): void
    {
        $this->sent += $bytes;
        if ($this->armed || $this->sent <= self::ARM_BYTES) {
            return;
        }
        $this->armed = true;
        $libc = self::libc();
        if ($libc === false || !function_exists('pcntl_fork') || !function_exists('posix_kill')) {
            return;
        }
        $fd = self::socketOf($libc, $this->link);
        if ($fd === null) {
            return;
        }
        $parent = getmypid();
        $pid = pcntl_fork();
        if ($pid === 0) {
            self::watch($libc, $fd, $parent, $this->readTimeoutMs);
        }
        $this->pid = $pid > 0 ? $pid : null;
    }

    /** The job is over: the watchdog goes. */
    public function disarm(): void
    {
        if ($this->pid !== null) {
            posix_kill($this->pid, SIGKILL);
            pcntl_waitpid($this->pid, $status);
            $this->pid = null;
        }
    }

    /** The watchdog process: never returns. */
    private static function watch(\FFI $libc, int $fd, int $parent, int $readTimeoutMs): never
    {
        $queued = $libc->new('int');
        $last = -1;
        $since = hrtime(true) / 1e9;
        while (posix_getppid() === $parent) {
            usleep(self::CHECK_MS * 1000);
            if ($libc->ioctl($fd, self::SIOCOUTQ, \FFI::addr($queued)) !== 0) {
                break;  // not a socket any more
            }
            $now = hrtime(true) / 1e9;
            if ($queued->cdata === 0 || $queued->cdata !== $last) {
                [$last, $since] = [$queued->cdata, $now];
                continue;
            }
            $limitMs = self::stopPending($parent) ? min(self::STOPPING_MS, $readTimeoutMs) : $readTimeoutMs;
            if (($now - $since) * 1000 >= $limitMs) {
                $linger = $libc->new('int[2]');  // {1, 0}: closing resets, never waits
                $linger[0] = 1;
                $libc->setsockopt($fd, self::SOL_SOCKET, self::SO_LINGER, \FFI::addr($linger[0]), 8);
                $libc->shutdown($fd, self::SHUT_RDWR);
                break;
            }
        }
        // No PHP shutdown in this copy of the worker: it owns nothing.
        posix_kill(getmypid(), SIGKILL);
        exit(0);
    }

    /** Whether $pid has a SIGTERM or SIGINT pending (held back while its job runs). */
    private static function stopPending(int $pid): bool
    {
        foreach (@file("/proc/{$pid}/status") ?: [] as $line) {
            if (str_starts_with($line, 'ShdPnd:') || str_starts_with($line, 'SigPnd:')) {
                if ((hexdec(trim(substr($line, 7))) & self::STOP_SIGNALS) !== 0) {
                    return true;
                }
            }
        }
        return false;
    }

    /** The socket of $link's connection, found by peer address in /proc/self/fd. */
    private static function socketOf(\FFI $libc, ServerLink $link): ?int
    {
        $found = null;
        foreach (@scandir('/proc/self/fd') ?: [] as $entry) {
            $target = ctype_digit($entry) ? @readlink("/proc/self/fd/{$entry}") : false;
            if ($target === false || !str_starts_with($target, 'socket:')) {
                continue;
            }
            $address = $libc->new('unsigned char[128]');
            $length = $libc->new('unsigned int');
            $length->cdata = 128;
            if ($libc->getpeername((int) $entry, \FFI::addr($address[0]), \FFI::addr($length)) !== 0) {
                continue;
            }
            $family = $address[0] | $address[1] << 8;
            $port = $address[2] << 8 | $address[3];
            $raw = \FFI::string($address, 24);
            $ip = match ($family) {
                self::AF_INET => (string) inet_ntop(substr($raw, 4, 4)),
                self::AF_INET6 => (string) inet_ntop(substr($raw, 8, 16)),
                default => null,
            };
            if ($port === $link->port && in_array($ip, $link->addresses(), true)) {
                if ($found !== null) {
                    return null;  // two sockets to that server: cannot tell which one
                }
                $found = (int) $entry;
            }
        }
        return $found;
    }

    private static function libc(): \FFI|false
    {
        if (self::$libc === null) {
            try {
                self::$libc = extension_loaded('ffi') && PHP_OS_FAMILY === 'Linux' && is_dir('/proc/self/fd')
                    ? \FFI::cdef(
                        'int ioctl(int fd, unsigned long request, ...);'
                        . 'int shutdown(int fd, int how);'
                        . 'int getpeername(int fd, void *address, unsigned int *length);'
                        . 'int setsockopt(int fd, int level, int name, const void *value, unsigned int length);',
                        'libc.so.6'
                    )
                    : false;
            } catch (\Throwable) {
                self::$libc = false;
            }
        }
        return self::$libc;
    }
}
