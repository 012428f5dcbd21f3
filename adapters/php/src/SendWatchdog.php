<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Cuts a job server connection whose unsent reply bytes have not moved for the read timeout.
 *
 * libgearman sends a job's packets (WORK_DATA, WORK_COMPLETE ...) in a loop that retries on every
 * timeout (_job_send: `while (ret == IO_WAIT || ret == TIMEOUT)`, and poll(2) restarted on EINTR):
 * a server that stops reading (frozen: TCP up, its receive buffer full) kept the call, the job, the
 * process and SIGTERM stuck for ever, and every other job server unserved. No PHP code runs during
 * that loop, so the watching is done by a small process forked when the worker starts. A job that
 * has sent enough to fill the socket's buffers hands it its connection's socket (SCM_RIGHTS); it
 * watches the bytes still queued there (SIOCOUTQ). A healthy gearmand takes them continuously, so
 * a queue that is not empty and has not moved for the read timeout (1 s once a SIGTERM waits,
 * pending in the worker while the job runs) means the server stopped reading: the watchdog resets
 * the connection (SO_LINGER 0, shutdown), the stuck send fails at once, the job ends there
 * (gearmand re-queues it; nothing more could arrive anyway) and the worker goes back to serving the
 * other servers. Without pcntl, posix, FFI or /proc there is no watchdog.
 *
 * @internal
 */
final class SendWatchdog
{
    /** A job that has sent this much may find the socket's buffers full: the watchdog looks on. */
    public const ARM_BYTES = 64 * 1024;
    private const CHECK_MS = 50;
    private const STOPPING_MS = 1000;
    private const AF_UNIX = 1;
    private const AF_INET = 2;
    private const AF_INET6 = 10;
    private const SOCK_SEQPACKET = 5;
    private const SOL_SOCKET = 1;
    private const SO_LINGER = 13;
    private const SCM_RIGHTS = 1;
    private const SHUT_RDWR = 2;
    private const SIOCOUTQ = 0x5411;
    private const POLLIN = 0x001;
    private const MSG_DONTWAIT = 0x40;
    private const PR_SET_PDEATHSIG = 1;
    /** SIGTERM (15) and SIGINT (2) in /proc's pending-signal masks. */
    private const STOP_SIGNALS = (1 << 14) | (1 << 1);

    private static \FFI|false|null $libc = null;

    /** Bytes the running job has sent; whether the watchdog watches its socket. */
    private int $sent = 0;
    private bool $watching = false;
    private ?ServerLink $link = null;
    /** @var array<int, array{int, string}> per link id: [fd, "socket:[inode]"] */
    private array $sockets = [];

    private function __construct(private readonly \FFI $ffi, private readonly int $control, private readonly int $pid)
    {
    }

    /** Forks the watchdog process; null where it cannot run (the worker runs without one). */
    public static function start(int $readTimeoutMs): ?self
    {
        $libc = self::libc();
        if ($libc === false || !function_exists('pcntl_fork') || !function_exists('posix_getppid')) {
            return null;
        }
        $pair = $libc->new('int[2]');
        if ($libc->socketpair(self::AF_UNIX, self::SOCK_SEQPACKET, 0, \FFI::addr($pair[0])) !== 0) {
            return null;
        }
        $parent = getmypid();
        $pid = pcntl_fork();
        if ($pid === 0) {
            $libc->close($pair[0]);
            self::watch($libc, $pair[1], $parent, $readTimeoutMs);
        }
        $libc->close($pair[1]);
        if ($pid < 0) {
            $libc->close($pair[0]);
            return null;
        }
        return new self($libc, $pair[0], $pid);
    }

    /** A job starts on $link's connection. */
    public function jobStarted(ServerLink $link): void
    {
        $this->link = $link;
        $this->sent = 0;
        $this->watching = false;
    }

    /** Called before each packet of the job: once the job has sent enough, its socket is watched. */
    public function beforeSend(int $bytes): void
    {
        $this->sent += $bytes;
        if ($this->watching || $this->link === null || $this->sent <= self::ARM_BYTES) {
            return;
        }
        $fd = $this->socketOf($this->link);
        $this->watching = $fd !== null && $this->tell('W', $fd);
    }

    /** The job is over: its socket is no longer watched. */
    public function jobEnded(): void
    {
        if ($this->watching) {
            $this->tell('D', null);
        }
        $this->watching = false;
        $this->link = null;
    }

    /** Ends the watchdog process (the worker stops). */
    public function close(): void
    {
        $this->ffi->close($this->control);  // the watchdog sees the end of its socket and exits
        posix_kill($this->pid, SIGKILL);
        pcntl_waitpid($this->pid, $status);
    }

    /** Sends the watchdog one command byte, with a socket for 'W'. */
    private function tell(string $command, ?int $fd): bool
    {
        $libc = $this->ffi;
        $byte = $libc->new('char[1]');
        $byte[0] = $command;
        $iov = $libc->new('struct iovec');
        $iov->iov_base = \FFI::addr($byte[0]);
        $iov->iov_len = 1;
        $msg = $libc->new('struct msghdr');
        $msg->msg_iov = \FFI::addr($iov);
        $msg->msg_iovlen = 1;
        $control = $libc->new('unsigned char[24]');  // CMSG_SPACE(sizeof(int))
        if ($fd !== null) {
            // struct cmsghdr { size_t cmsg_len = CMSG_LEN(4); int level; int type; } then the fd
            \FFI::memcpy($control, pack('PVVV', 20, self::SOL_SOCKET, self::SCM_RIGHTS, $fd), 20);
            $msg->msg_control = \FFI::addr($control[0]);
            $msg->msg_controllen = 24;
        }
        return $libc->sendmsg($this->control, \FFI::addr($msg), self::MSG_DONTWAIT) === 1;
    }

    /** The watchdog process: never returns. */
    private static function watch(\FFI $libc, int $control, int $parent, int $readTimeoutMs): never
    {
        pcntl_sigprocmask(SIG_BLOCK, [SIGTERM, SIGINT]);  // signals to the group are the worker's
        $libc->prctl(self::PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        $poll = $libc->new('struct pollfd');
        $poll->fd = $control;
        $poll->events = self::POLLIN;
        $queued = $libc->new('int');
        [$watched, $last, $since] = [null, -1, 0.0];
        while (posix_getppid() === $parent) {
            $ready = $libc->poll(\FFI::addr($poll), 1, $watched === null ? 1000 : self::CHECK_MS);
            if ($ready > 0) {
                [$command, $fd] = self::receive($libc, $control);
                if ($command === null) {
                    break;  // the worker closed its end: it stops
                }
                if ($watched !== null) {
                    $libc->close($watched);
                }
                [$watched, $last, $since] = [$fd, -1, hrtime(true) / 1e9];
                continue;
            }
            if ($watched === null || $libc->ioctl($watched, self::SIOCOUTQ, \FFI::addr($queued)) !== 0) {
                continue;
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
                $libc->setsockopt($watched, self::SOL_SOCKET, self::SO_LINGER, \FFI::addr($linger[0]), 8);
                $libc->shutdown($watched, self::SHUT_RDWR);
                $libc->close($watched);
                $watched = null;
            }
        }
        // No PHP shutdown in this copy of the worker: it owns nothing.
        posix_kill(getmypid(), SIGKILL);
        exit(0);
    }

    /** @return array{?string, ?int} the command byte (null: end of the socket) and the socket sent with it */
    private static function receive(\FFI $libc, int $control): array
    {
        $byte = $libc->new('char[1]');
        $iov = $libc->new('struct iovec');
        $iov->iov_base = \FFI::addr($byte[0]);
        $iov->iov_len = 1;
        $buffer = $libc->new('unsigned char[24]');
        $msg = $libc->new('struct msghdr');
        $msg->msg_iov = \FFI::addr($iov);
        $msg->msg_iovlen = 1;
        $msg->msg_control = \FFI::addr($buffer[0]);
        $msg->msg_controllen = 24;
        if ($libc->recvmsg($control, \FFI::addr($msg), 0) !== 1) {
            return [null, null];
        }
        $fd = null;
        if ($msg->msg_controllen >= 20) {
            $header = unpack('Plength/Vlevel/Vtype/Vfd', \FFI::string($buffer, 20));
            if ($header !== false && $header['level'] === self::SOL_SOCKET && $header['type'] === self::SCM_RIGHTS) {
                $fd = $header['fd'];
            }
        }
        return [$byte[0], $fd];
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

    /** The socket of $link's connection (found by peer address in /proc/self/fd, then remembered). */
    private function socketOf(ServerLink $link): ?int
    {
        $known = $this->sockets[spl_object_id($link)] ?? null;
        if ($known !== null && @readlink("/proc/self/fd/{$known[0]}") === $known[1]) {
            return $known[0];
        }
        unset($this->sockets[spl_object_id($link)]);
        $found = null;
        foreach (@scandir('/proc/self/fd') ?: [] as $entry) {
            $target = ctype_digit($entry) ? @readlink("/proc/self/fd/{$entry}") : false;
            if ($target === false || !str_starts_with($target, 'socket:') || !self::isPeer($this->ffi, (int) $entry, $link)) {
                continue;
            }
            if ($found !== null) {
                return null;  // two sockets to that server: cannot tell which one
            }
            $found = [(int) $entry, $target];
        }
        if ($found === null) {
            return null;
        }
        $this->sockets[spl_object_id($link)] = $found;
        return $found[0];
    }

    private static function isPeer(\FFI $libc, int $fd, ServerLink $link): bool
    {
        $address = $libc->new('unsigned char[128]');
        $length = $libc->new('unsigned int');
        $length->cdata = 128;
        if ($libc->getpeername($fd, \FFI::addr($address[0]), \FFI::addr($length)) !== 0) {
            return false;
        }
        $family = $address[0] | $address[1] << 8;  // sa_family, host byte order (little-endian)
        $raw = \FFI::string($address, 24);
        $ip = match ($family) {
            self::AF_INET => (string) inet_ntop(substr($raw, 4, 4)),
            self::AF_INET6 => (string) inet_ntop(substr($raw, 8, 16)),
            default => null,
        };
        return ($address[2] << 8 | $address[3]) === $link->port && in_array($ip, $link->addresses(), true);
    }

    private static function libc(): \FFI|false
    {
        if (self::$libc === null) {
            try {
                self::$libc = extension_loaded('ffi') && PHP_OS_FAMILY === 'Linux' && is_dir('/proc/self/fd')
                    ? \FFI::cdef(
                        'struct iovec { void *iov_base; size_t iov_len; };'
                        . 'struct msghdr { void *msg_name; unsigned int msg_namelen; struct iovec *msg_iov;'
                        . ' size_t msg_iovlen; void *msg_control; size_t msg_controllen; int msg_flags; };'
                        . 'struct pollfd { int fd; short events; short revents; };'
                        . 'int socketpair(int domain, int type, int protocol, int *fds);'
                        . 'long sendmsg(int fd, const struct msghdr *msg, int flags);'
                        . 'long recvmsg(int fd, struct msghdr *msg, int flags);'
                        . 'int poll(struct pollfd *fds, unsigned long nfds, int timeout);'
                        . 'int close(int fd);'
                        . 'int ioctl(int fd, unsigned long request, ...);'
                        . 'int shutdown(int fd, int how);'
                        . 'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);'
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
