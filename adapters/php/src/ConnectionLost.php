<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * A packet of the job could not be sent: the connection to its job server is gone (reset because
 * the server took nothing for the read timeout, or closed by the server). Nothing more of the job
 * can arrive; gearmand re-queues it. Ends the job without another packet.
 *
 * @internal
 */
final class ConnectionLost extends \RuntimeException
{
}
