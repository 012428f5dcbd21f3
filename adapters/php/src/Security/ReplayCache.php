<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

/**
 * (key id, nonce) -> (job handle, deadline), kept until the deadline; bounded. The same behaviour
 * as the Python reference's ReplayCache (bridge/security/verify.py).
 *
 * When full, the entry with the earliest deadline is evicted and its deadline becomes the floor: a
 * job whose deadline is not later than the floor is refused from then on ("replay cache full"), so
 * no evicted nonce can ever run again.
 */
final class ReplayCache implements ReplayGuard
{
    public const DEFAULT_CAPACITY = 100_000;

    /** @var array<string, array{string, int}> "key id\0nonce" => [job handle, deadline] */
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

    public function admit(string $keyId, string $nonce, string $handle, int $deadlineMs, int $nowMs): ?string
    {
        $this->expire($nowMs);
        if ($deadlineMs <= $this->floorMs) {
            return 'replay cache full';
        }
        $id = $keyId . "\0" . $nonce;
        $seen = $this->byNonce[$id] ?? null;
        if ($seen !== null) {
            // The same handle again: gearmand re-running the job after a worker died.
            return $seen[0] === $handle ? null : 'replayed';
        }
        while (count($this->byNonce) >= $this->capacity) {
            [$oldest, $oldId] = $this->expiry->extract();
            unset($this->byNonce[$oldId]);
            $this->floorMs = max($this->floorMs, $oldest);
            if ($deadlineMs <= $this->floorMs) {
                return 'replay cache full';
            }
        }
        $this->byNonce[$id] = [$handle, $deadlineMs];
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
