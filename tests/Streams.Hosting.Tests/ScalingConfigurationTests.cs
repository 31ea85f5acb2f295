using Microsoft.Extensions.Configuration;

namespace Streams.Hosting.Tests;

public sealed class ScalingConfigurationTests
{
    [Fact]
    public void Unset_the_settings_are_the_production_defaults()
    {
        var settings = ScalingConfiguration.Read(ServerConfiguration.Build(null, []));
        Assert.Equal((10_000L, 600_000L, 1_200_000L, 120_000L), (settings.EvaluateIntervalMs, settings.SplitCooldownMs, settings.MergeCooldownMs, settings.ReportIntervalMs));
        Assert.Equal([120_000L, 300_000L, 600_000L, 1_200_000L], settings.WindowsMs);
    }

    [Fact]
    public void Short_test_values_bind_with_windows_as_a_list_or_an_array()
    {
        var settings = ScalingConfiguration.Read(ServerConfiguration.Build(null, new Dictionary<string, string?>
        {
            ["Scaling:EvaluateIntervalMs"] = "200",
            ["Scaling:SplitCooldownMs"] = "1000",
            ["Scaling:MergeCooldownMs"] = "2000",
            ["Scaling:WindowsMs"] = "1000, 2000,3000,4000",
        }));
        Assert.Equal((200L, 1000L, 2000L), (settings.EvaluateIntervalMs, settings.SplitCooldownMs, settings.MergeCooldownMs));
        Assert.Equal([1000L, 2000L, 3000L, 4000L], settings.WindowsMs);

        var array = ScalingConfiguration.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Scaling:WindowsMs:0"] = "10", ["Scaling:WindowsMs:1"] = "20", ["Scaling:WindowsMs:2"] = "30", ["Scaling:WindowsMs:3"] = "40",
        }).Build());
        Assert.Equal([10L, 20L, 30L, 40L], array.WindowsMs);
    }

    [Theory]
    [InlineData("Scaling:EvaluateIntervalMs", "0", "Scaling:EvaluateIntervalMs must be positive")]
    [InlineData("Scaling:EvaluateIntervalMs", "10s", "Scaling:EvaluateIntervalMs must be a whole number of milliseconds")]
    [InlineData("Scaling:SplitCooldownMs", "-1", "Scaling:SplitCooldownMs must be a whole number")]
    [InlineData("Scaling:WindowsMs", "120000,300000,600000", "Scaling:WindowsMs must be 4 increasing")]
    [InlineData("Scaling:WindowsMs", "300000,120000,600000,1200000", "Scaling:WindowsMs must be 4 increasing")]
    [InlineData("Scaling:WindowsMs", "2m,5m,10m,20m", "Scaling:WindowsMs must list whole numbers")]
    public void Bad_values_stop_the_server_naming_the_setting(string key, string value, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => ScalingConfiguration.Read(ServerConfiguration.Build(null, new Dictionary<string, string?> { [key] = value })));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }
}
