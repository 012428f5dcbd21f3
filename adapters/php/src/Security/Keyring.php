<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

/**
 * Named HMAC keys (wire contract, section 9): from `BRIDGE_KEYS` / `BRIDGE_KEYS_FILE` or given in
 * code. The same syntax and checks as the Python reference (bridge/security/keys.py): `id:BASE64`
 * entries separated by commas or newlines, `#` starts a comment line, keys of at least 16 bytes,
 * ids of 1 to 64 characters of [A-Za-z0-9._-].
 *
 *     $keys = Keyring::parse('k2026:c2VjcmV0LXNlY3JldC1zZWNyZXQ=');
 *     $keys = Keyring::fromEnv();        // null when neither variable is set
 *
 * A key never appears in a message, a log line or a dump of this object (only its id does).
 */
final class Keyring
{
    /** The shortest key accepted, in bytes (32 recommended). */
    public const MIN_KEY_BYTES = 16;
    private const KEY_ID = '/^[A-Za-z0-9._-]{1,64}$/D';

    /** @var array<string, string> key id => key bytes */
    private readonly array $keys;
    public readonly string $signingId;

    /**
     * @param array<string, string> $keys key id => key bytes
     * @throws KeyringError
     */
    public function __construct(#[\SensitiveParameter] array $keys, ?string $signingId = null)
    {
        if ($keys === []) {
            throw new KeyringError('a keyring needs at least one key');
        }
        $checked = [];
        $number = 0;
        foreach ($keys as $keyId => $key) {
            $keyId = (string) $keyId;
            $number++;
            if (!preg_match(self::KEY_ID, $keyId)) {
                throw new KeyringError(sprintf(
                    'key %s: the id must be 1 to 64 characters of [A-Za-z0-9._-] (entries are ID:BASE64)',
                    self::name($keyId, $number)
                ));
            }
            if (strlen($key) < self::MIN_KEY_BYTES) {
                throw new KeyringError(sprintf(
                    'key %s is %d bytes; at least %d are needed',
                    self::name($keyId, $number),
                    strlen($key),
                    self::MIN_KEY_BYTES
                ));
            }
            $checked[$keyId] = $key;
        }
        $this->keys = $checked;
        $chosen = ($signingId ?? '') !== '' ? $signingId : (string) array_key_first($checked);
        if (!isset($checked[$chosen])) {
            throw new KeyringError(sprintf(
                'the signing key id %s is not among the keys (%s); BRIDGE_SIGNING_KEY names a key id, not a key',
                self::name($chosen, null),
                $this->ids()
            ));
        }
        $this->signingId = $chosen;
    }

    /** The key named $keyId, or null. */
    public function key(string $keyId): ?string
    {
        return $this->keys[$keyId] ?? null;
    }

    /** The key ids, comma-separated. */
    public function ids(): string
    {
        return implode(', ', array_map('strval', array_keys($this->keys)));
    }

    /**
     * `id:BASE64` entries separated by commas or newlines; `#` starts a comment line.
     *
     * @throws KeyringError
     */
    public static function parse(#[\SensitiveParameter] string $text, ?string $signingId = null): self
    {
        $lines = preg_split('/\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e]|\x{85}|\x{2028}|\x{2029}/u', $text) ?: explode("\n", $text);
        $lines = array_filter($lines, static fn (string $line): bool => !str_starts_with(ltrim($line), '#'));
        $keys = [];
        $number = 0;
        foreach (explode(',', implode(',', $lines)) as $entry) {
            $number++;
            $entry = trim($entry);
            if ($entry === '') {
                continue;
            }
            $sep = strpos($entry, ':');
            if ($sep === false) {
                throw new KeyringError("key entry {$number} is not ID:BASE64");
            }
            $keyId = trim(substr($entry, 0, $sep));
            $encoded = trim(substr($entry, $sep + 1));
            // Standard base64, padded, nothing outside its alphabet (Python's b64decode(validate=True)).
            $key = preg_match('~^[A-Za-z0-9+/]*={0,2}$~D', $encoded) && strlen($encoded) % 4 === 0
                ? base64_decode($encoded, true)
                : false;
            if ($key === false) {
                throw new KeyringError(sprintf('key %s: not standard base64', self::name($keyId, $number)));
            }
            if (array_key_exists($keyId, $keys)) {
                throw new KeyringError(sprintf('key %s is listed twice', self::name($keyId, $number)));
            }
            $keys[$keyId] = $key;
        }
        return new self($keys, $signingId);
    }

    /**
     * `BRIDGE_KEYS`, or else the file `BRIDGE_KEYS_FILE` (`BRIDGE_SIGNING_KEY` picks the signing
     * key); null when neither is set.
     *
     * @param array<string, string>|null $env default: the process environment
     * @throws KeyringError
     */
    public static function fromEnv(?array $env = null): ?self
    {
        $get = static fn (string $name): string => (string) ($env === null ? getenv($name) : ($env[$name] ?? ''));
        $signing = $get('BRIDGE_SIGNING_KEY') ?: null;
        if ($get('BRIDGE_KEYS') !== '') {
            return self::parse($get('BRIDGE_KEYS'), $signing);
        }
        $path = $get('BRIDGE_KEYS_FILE');
        if ($path !== '') {
            $text = @file_get_contents($path);
            if ($text === false) {
                $why = is_file($path) ? 'cannot be read' : 'No such file or directory';
                throw new KeyringError("BRIDGE_KEYS_FILE {$path}: {$why}");
            }
            return self::parse($text, $signing);
        }
        return null;
    }

    /** @return array<string, mixed> what var_dump() and print_r() show: the ids, never a key */
    public function __debugInfo(): array
    {
        return ['ids' => $this->ids(), 'signingId' => $this->signingId];
    }

    public function __serialize(): array
    {
        throw new \LogicException('a Keyring is not serialized (it holds keys)');
    }

    /**
     * How an error names a key: its id when that cannot be a key written the wrong way round (a
     * valid id of at most 20 characters: a 16-byte key is 22+ base64 characters), else its entry
     * number, or for a signing key id "(not shown: it looks like a key)". Errors never show a key.
     */
    private static function name(string $keyId, ?int $number): string
    {
        if (strlen($keyId) <= 20 && preg_match(self::KEY_ID, $keyId)) {
            return "'{$keyId}'";
        }
        return $number !== null ? "entry {$number}" : '(not shown: it looks like a key)';
    }
}
