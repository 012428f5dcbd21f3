#!/usr/bin/perl
# An unchanged Perl program submitting jobs with Gearman::Client (Debian's
# libgearman-client-perl) to functions that bridge workers serve bare (the Bare service of
# schemas/interop/v1/interop.proto). Prints one JSON line per call for the test to check.
# Usage: perl client.pl HOST:PORT[,HOST:PORT]
use strict;
use warnings;

use Gearman::Client;
use JSON::XS;

my $json = JSON::XS->new->utf8->canonical;
my @servers = split /,/, ($ARGV[0] || '127.0.0.1:4730');
my $client = Gearman::Client->new(job_servers => \@servers, exceptions => 1);

sub report { print $json->encode({@_}), "\n" }

# A hash as Perl builds it: numbers, strings, nested hashes, a 64-bit integer.
my $sent = {
    text    => "h\x{e9}llo from Perl",
    numbers => [1, -2, 300],
    tags    => ['old', "r\x{e9}sum\x{e9}"],
    inner   => { name => 'crate', value => 9_007_199_254_740_993 },
    labels  => { 7 => 'seven' },
    scalars => { f_bool => 1, f_int64 => -9_007_199_254_740_993, f_string => 'x' },
};
my $reply = $client->do_task(interop_bare_echo_json => $json->encode($sent), { timeout => 10 });
report(call => 'echo_json', sent => $sent, reply => ($reply ? $json->decode($$reply) : undef));

my $text = "h\x{e9}llo \x{2713}";
utf8::encode($text);
$reply = $client->do_task(interop_bare_reverse => $text, { timeout => 10 });
my $reversed = $reply ? $$reply : undef;
utf8::decode($reversed) if defined $reversed;
report(call => 'reverse', reply => $reversed);

my ($exception, $failed) = (undef, 0);
$reply = $client->do_task(
    interop_bare_raise_json => $json->encode({ code => 5, message => 'no such crate' }),
    {
        timeout      => 10,
        on_exception => sub { $exception = shift },
        on_fail      => sub { $failed = 1 },
    },
);
report(
    call      => 'raise_json',
    reply     => ($reply ? $$reply : undef),
    failed    => $failed,
    exception => (defined $exception ? $json->decode($exception) : undef),
);
