<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

/**
 * (key id, nonce) -> deadline, kept until the deadline; bounded. The same behaviour as the Python
 * reference's ReplayCache (bridge/security/verify.py): a nonce seen before is "replayed" whatever
 * job handle it comes with (handles repeat across gearmand restarts and same-named hosts).
 *
 * When full, the entry with the earliest deadline is evicted and its deadline becomes the floor: a
 * job whose deadline is not later than the floor is refused from then on ("replay cache full"), so
 * no evicted nonce can ever run again.
 */
final class ReplayCache implements ReplayGuard
{
    public const DEFAULT_CAPACITY = 100_000;

    /** @var array<string, int> "key id\0nonce" => deadline */
    private array $byNonce = [];
    /** @var \SplMinHeap<array{int, string}> [deadline, "key id\0nonce"], earliest deadline first */
    private \SplMinHeap $expiry;
    /** The latest deadline evicted so far (ms): jobs due at or before it are refused. */
    public int $floorMs = 0;

    public function __construct(private readonly int $capacity = self::DEFAULT_CAPACITY)
    {
        if ($capacity < 1) {
            throw new \InvalidArgumentException('capacity must be at least 1');
        }
        $this->expiry = new class () extends \SplMinHeap {
            /**
             * @param array{int, string} $value1
             * @param array{int, string} $value2
             */
            protected function compare(mixed $value1, mixed $value2): int
            {
                return $value2[0] <=> $value1[0];
            }
        };
    }

    public function count(): int
    {
        return count($this->byNonce);
    }

    public function admit(string $keyId, string $nonce, int $deadlineMs, int $nowMs): ?string
    {
        $this->expire($nowMs);
        if ($deadlineMs <= $this->floorMs) {
            return self::REPLAY_CACHE_FULL;
        }
        $id = $keyId . "\0" . $nonce;
        if (isset($this->byNonce[$id])) {
            return 'replayed';
        }
        while (count($this->byNonce) >= $this->capacity) {
            [$oldest, $oldId] = $this->expiry->extract();
            unset($this->byNonce[$oldId]);
            $this->floorMs = max($this->floorMs, $oldest);
            if ($deadlineMs <= $this->floorMs) {
                return self::REPLAY_CACHE_FULL;
            }
        }
        $this->byNonce[$id] = $deadlineMs;
        $this->expiry->insert([$deadlineMs, $id]);
        return null;
    }

    private function expire(int $nowMs): void
    {
        while (!$this->expiry->isEmpty() && $this->expiry->top()[0] <= $nowMs) {
            unset($this->byNonce[$this->expiry->extract()[1]]);
        }
    }
}
