<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * The worker's log: one line per event on stderr, "[bridge-php PID] LEVEL: message", written only at
 * or above one level (`--log-level` / BRIDGE_LOG_LEVEL, default info; docs/workers.md).
 *
 * The job lines of docs/workers.md are written by jobLine(): one at debug per job, and one at
 * warning for every error answer, its message escaped (no control character, no line break, no
 * bidi override reaches the log) and cut at 200 characters.
 */
final class Log
{
    public const DEBUG = 10;
    public const INFO = 20;
    public const WARNING = 30;
    public const ERROR = 40;

    /** The longest message a "job failed" line quotes, in characters. */
    public const MESSAGE_LIMIT = 200;

    private const NAMES = [self::DEBUG => 'debug', self::INFO => 'info', self::WARNING => 'warning', self::ERROR => 'error'];
    private const BY_NAME = ['debug' => self::DEBUG, 'info' => self::INFO, 'warning' => self::WARNING, 'warn' => self::WARNING, 'error' => self::ERROR];

    /** @var \Closure(string): void */
    private readonly \Closure $sink;

    /**
     * @param int $level the lowest level written (Log::DEBUG ... Log::ERROR)
     * @param \Closure(string): void|null $sink receives each line as "LEVEL: message" (default:
     *        stderr, prefixed with "[bridge-php PID] ")
     */
    public function __construct(public readonly int $level = self::INFO, ?\Closure $sink = null)
    {
        $this->sink = $sink ?? static function (string $line): void {
            fwrite(STDERR, sprintf("[bridge-php %d] %s\n", getmypid(), $line));
        };
    }

    /**
     * The level a name stands for: debug, info, warning (or warn), error, in any case; null for
     * anything else.
     */
    public static function levelNamed(string $name): ?int
    {
        return self::BY_NAME[strtolower(trim($name))] ?? null;
    }

    /**
     * The log level asked for: $name when given, else BRIDGE_LOG_LEVEL when set and not empty, else info.
     *
     * @throws \InvalidArgumentException naming the flag or the variable when the level is unknown
     */
    public static function levelFrom(?string $name): int
    {
        $source = '--log-level';
        if ($name === null) {
            $name = (string) getenv('BRIDGE_LOG_LEVEL');
            $source = 'BRIDGE_LOG_LEVEL';
            if ($name === '') {
                return self::INFO;
            }
        }
        return self::levelNamed($name) ?? throw new \InvalidArgumentException(sprintf(
            "%s must be one of debug, info, warning, error, not '%s'",
            $source,
            self::printable($name)
        ));
    }

    public function enabled(int $level): bool
    {
        return $level >= $this->level;
    }

    public function debug(string $message): void
    {
        $this->write(self::DEBUG, $message);
    }

    public function info(string $message): void
    {
        $this->write(self::INFO, $message);
    }

    public function warning(string $message): void
    {
        $this->write(self::WARNING, $message);
    }

    public function error(string $message): void
    {
        $this->write(self::ERROR, $message);
    }

    public function write(int $level, string $message): void
    {
        if ($level >= $this->level) {
            ($this->sink)((self::NAMES[$level] ?? 'info') . ': ' . $message);
        }
    }

    /** A closure that writes at $level, for the parts that take a Closure(string). */
    public function at(int $level): \Closure
    {
        return fn (string $message) => $this->write($level, $message);
    }

    /**
     * The line of docs/workers.md for a job whose answer has been sent: at debug when $outcome is
     * OK, else "job failed ..." with the message at warning.
     */
    public function job(
        string $function,
        string $handle,
        string $encoding,
        int $bytes,
        float $seconds,
        string $outcome,
        ?string $traceId = null,
        ?string $message = null,
    ): void {
        $failed = $outcome !== 'OK';
        $level = $failed ? self::WARNING : self::DEBUG;
        if ($level < $this->level) {
            return;
        }
        $line = sprintf(
            '%s function=%s handle=%s encoding=%s bytes=%d seconds=%.6f outcome=%s',
            $failed ? 'job failed' : 'job',
            self::word($function),
            self::word($handle),
            $encoding,
            $bytes,
            $seconds,
            $outcome
        );
        if ($traceId !== null) {
            $line .= ' trace_id=' . $traceId;
        }
        if ($failed) {
            $line .= ' message="' . self::escape($message ?? '') . '"';
        }
        $this->write($level, $line);
    }

    /**
     * $text cut at MESSAGE_LIMIT characters ("..." marks a cut), then escaped as a JSON string is
     * (docs/workers.md): backslash and quote, \n \r \t, every other control character (C0, DEL,
     * C1), line separator and format character as \uXXXX (a UTF-16 pair above U+FFFF); a byte
     * that is not UTF-8 as \xHH, the UTF-8 around it kept.
     */
    public static function escape(string $text): string
    {
        // one well-formed UTF-8 sequence, else one byte; a character is at most 4 bytes
        preg_match_all(
            '/[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}'
            . '|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}'
            . '|\xf4[\x80-\x8f][\x80-\xbf]{2}|[\x80-\xff]/s',
            substr($text, 0, 4 * (self::MESSAGE_LIMIT + 1)),
            $found
        );
        $chars = $found[0];
        $cut = count($chars) > self::MESSAGE_LIMIT;
        $out = '';
        foreach (array_slice($chars, 0, self::MESSAGE_LIMIT) as $char) {
            $out .= self::escapeChar($char);
        }
        return $cut ? $out . '...' : $out;
    }

    private static function escapeChar(string $char): string
    {
        if (strlen($char) === 1) {
            $byte = ord($char);
            return match (true) {
                $char === '\\' => '\\\\',
                $char === '"' => '\\"',
                $char === "\n" => '\\n',
                $char === "\r" => '\\r',
                $char === "\t" => '\\t',
                $byte < 0x20 || $byte === 0x7f => sprintf('\\u%04x', $byte),
                $byte > 0x7f => sprintf('\\x%02x', $byte),
                default => $char,
            };
        }
        $b = array_values(unpack('C*', $char) ?: []);
        $cp = match (count($b)) {
            2 => (($b[0] & 0x1f) << 6) | ($b[1] & 0x3f),
            3 => (($b[0] & 0x0f) << 12) | (($b[1] & 0x3f) << 6) | ($b[2] & 0x3f),
            default => (($b[0] & 0x07) << 18) | (($b[1] & 0x3f) << 12) | (($b[2] & 0x3f) << 6) | ($b[3] & 0x3f),
        };
        // C1 controls, line/paragraph separators, bidi and other format characters
        $unsafe = ($cp >= 0x80 && $cp <= 0x9f) || $cp === 0xad || $cp === 0x061c || $cp === 0x180e
            || ($cp >= 0x200b && $cp <= 0x200f) || ($cp >= 0x2028 && $cp <= 0x202e)
            || ($cp >= 0x2060 && $cp <= 0x206f) || $cp === 0xfeff || ($cp >= 0xfff9 && $cp <= 0xfffb)
            || ($cp >= 0xe0000 && $cp <= 0xe007f);
        if (!$unsafe) {
            return $char;
        }
        return $cp > 0xffff
            ? sprintf('\\u%04x\\u%04x', 0xd800 + (($cp - 0x10000) >> 10), 0xdc00 + (($cp - 0x10000) & 0x3ff))
            : sprintf('\\u%04x', $cp);
    }

    /** A function name or job handle as one word: anything but printable ASCII escaped. */
    private static function word(string $text): string
    {
        return $text === '' ? '-' : addcslashes($text, "\0..\40\"\\\177..\377");
    }

    /** A value quoted in an error line: printable ASCII only, at most 60 characters. */
    public static function printable(string $text): string
    {
        return addcslashes(strlen($text) > 60 ? substr($text, 0, 60) . '...' : $text, "\0..\37\177..\377\\'");
    }
}
