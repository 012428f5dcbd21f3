#!/usr/bin/perl
# A text-statistics worker as Perl shops write them: Gearman::Worker (Debian's
# libgearman-client-perl) and JSON::XS, no bridge code. legacy.proto declares it as
# Legacy.WordStats (bare: true, encoding: JSON). Servers from GEARMAN_SERVERS (host:port,...).
use strict;
use warnings;

use Gearman::Worker;
use JSON::XS;

my $json = JSON::XS->new->utf8;
my @servers = split /,/, ($ENV{GEARMAN_SERVERS} || '127.0.0.1:4730');

my $worker = Gearman::Worker->new(job_servers => \@servers);
$worker->register_function(word_stats => sub {
    my $job = shift;
    my $req = $json->decode($job->arg);
    unless (length $req->{text}) {
        # Not `die`: Gearman::Worker 2.004 sends a died job's error Storable-frozen, then a
        # WORK_FAIL that gearmand answers with ERROR JOB_NOT_FOUND, and that ERROR ends work().
        $worker->send_work_exception($job, $json->encode({ code => 3, message => 'no text to count' }));
        return undef;
    }

    my $min = $req->{min_length} || 1;
    my @words = grep { length($_) >= $min } split /\W+/, $req->{text};
    my %counts;
    $counts{lc $_}++ for @words;
    my ($longest) = sort { length($b) <=> length($a) || $a cmp $b } @words;
    my $checksum = 9_007_199_254_740_993;    # above 2**53: 64-bit integers travel exactly
    $checksum += ord($_) for split //, $req->{text};

    return $json->encode({
        words      => scalar @words,
        longest    => $longest // '',
        unique     => [sort keys %counts],
        has_digits => ($req->{text} =~ /\d/ ? 1 : 0),    # Perl's booleans are 1 and 0
        checksum   => $checksum,
        counts     => \%counts,
    });
});

$worker->work while 1;
