using Streams.Common.Configuration;
using Streams.SegmentStore;

namespace Streams.Hosting.Tests;

public sealed class ServerConfigurationTests
{
    [Fact]
    public void Sizes_and_durations_bind_from_their_written_forms()
    {
        var configuration = ServerConfiguration.Build(null, new Dictionary<string, string?>
        {
            ["SegmentStore:CacheSize"] = "512MiB",
            ["SegmentStore:Tier2FlushAge"] = "00:00:05",
            ["SegmentStore:ContainerStopTimeout"] = "00:00:03",
        });
        var options = ServerConfiguration.Bind<SegmentStoreOptions>(configuration, "SegmentStore");
        Assert.Equal(ByteSize.MiB(512), options.CacheSize);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Tier2FlushAge);
        Assert.Equal(TimeSpan.FromSeconds(3), options.ContainerStopTimeout);
        Assert.Empty(ServerConfiguration.Deprecations(configuration));
    }

    [Fact]
    public void Keys_of_earlier_releases_are_still_read_and_named_in_a_warning()
    {
        var configuration = ServerConfiguration.Build(null, new Dictionary<string, string?>
        {
            ["SegmentStore:CacheSizeMb"] = "512",
            ["SegmentStore:Tier2FlushAgeMs"] = "1500",
            ["SegmentStore:CheckpointEveryKb"] = "512",
            ["SegmentStore:WriterExpiryMinutes"] = "90",
            ["ZooKeeper:SessionTimeoutMs"] = "4000",
            ["Bookie:JournalSegmentSizeBits"] = "24",
        });
        var options = ServerConfiguration.Bind<SegmentStoreOptions>(configuration, "SegmentStore");
        Assert.Equal(ByteSize.MiB(512), options.CacheSize);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), options.Tier2FlushAge);
        Assert.Equal(ByteSize.KiB(512), options.CheckpointEvery);
        Assert.Equal(TimeSpan.FromMinutes(90), options.WriterExpiry);
        Assert.Equal(16L << 20, ServerConfiguration.Bind<Bookie.BookieOptions>(configuration, "Bookie").JournalSegmentSize.Bytes);
        Assert.Equal("00:00:04", configuration["ZooKeeper:SessionTimeout"]);

        var warnings = ServerConfiguration.Deprecations(configuration).ToList();
        Assert.Equal(6, warnings.Count);
        Assert.Contains(warnings, w => w.Contains("SegmentStore:CacheSizeMb=512", StringComparison.Ordinal) && w.Contains("SegmentStore:CacheSize=512MiB", StringComparison.Ordinal));
    }

    [Fact]
    public void A_successor_that_is_set_wins_over_its_old_key()
    {
        var configuration = ServerConfiguration.Build(null, new Dictionary<string, string?>
        {
            ["SegmentStore:CacheSizeMb"] = "512",
            ["SegmentStore:CacheSize"] = "64MiB",
        });
        Assert.Equal(ByteSize.MiB(64), ServerConfiguration.Bind<SegmentStoreOptions>(configuration, "SegmentStore").CacheSize);
    }

    [Fact]
    public void An_old_key_in_a_later_source_wins_over_its_successor_in_an_earlier_one()
    {
        // The successor in the role's defaults (as appsettings.json sets CacheSize), the old key in a later source (as
        // an environment variable of an earlier release's deployment): the operator's setting is the one in effect.
        var configuration = ServerConfiguration.Build(
            null,
            new Dictionary<string, string?> { ["SegmentStore:CacheSizeMb"] = "16" },
            new Dictionary<string, string?> { ["SegmentStore:CacheSize"] = "256MiB", ["SegmentStore:Tier2FlushAgeMs"] = "1500", ["SegmentStore:Tier2FlushAge"] = "00:00:03" });
        var options = ServerConfiguration.Bind<SegmentStoreOptions>(configuration, "SegmentStore");
        Assert.Equal(ByteSize.MiB(16), options.CacheSize);
        Assert.Equal(TimeSpan.FromSeconds(3), options.Tier2FlushAge); // both in one source: the successor
    }

    [Fact]
    public void A_bad_value_names_the_setting()
    {
        var error = Assert.Throws<ArgumentException>(() => ServerConfiguration.Build(null, new Dictionary<string, string?> { ["SegmentStore:Tier2FlushAgeMs"] = "soon" }));
        Assert.Contains("SegmentStore:Tier2FlushAgeMs", error.Message, StringComparison.Ordinal);

        var invalid = new SegmentStoreOptions { CacheSize = ByteSize.MiB(1) };
        Assert.Contains("SegmentStore:CacheSize", Assert.Throws<ArgumentException>(invalid.Validate).Message, StringComparison.Ordinal);

        var noStop = new SegmentStoreOptions { ContainerStopTimeout = TimeSpan.Zero };
        Assert.Contains("SegmentStore:ContainerStopTimeout", Assert.Throws<ArgumentException>(noStop.Validate).Message, StringComparison.Ordinal);
    }
}
