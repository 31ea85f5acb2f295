using Streams.SegmentStore.Load;

namespace Streams.SegmentStore.Tests.Load;

/// <summary>The Scaling settings of the segment store (SegmentLoadOptions.cs).</summary>
public sealed class SegmentLoadOptionsTests
{
    [Fact]
    public void The_defaults_are_pravegas_tick_windows_and_report_interval()
    {
        var options = new SegmentLoadOptions();
        options.Validate();
        Assert.Equal(5000, options.TickMs);
        Assert.Equal([120_000.0, 300_000, 600_000, 1_200_000], options.Windows());
        Assert.Equal(120_000, options.ReportIntervalMs);
    }

    [Theory]
    [InlineData(5, "120000", 1000, "Scaling:TickMs")]
    [InlineData(1000, "", 1000, "Scaling:WindowsMs")]
    [InlineData(1000, "2000,abc", 1000, "Scaling:WindowsMs")]
    [InlineData(1000, "500", 1000, "Scaling:WindowsMs")]
    [InlineData(1000, "3000,2000", 1000, "shortest window first")]
    [InlineData(1000, "1,2,3,4,5,6,7,8,9", 1000, "Scaling:WindowsMs")]
    [InlineData(1000, "2000", 500, "Scaling:ReportIntervalMs")]
    public void Bad_settings_name_what_to_fix(int tick, string windows, int interval, string named)
    {
        var options = new SegmentLoadOptions { TickMs = tick, WindowsMs = windows, ReportIntervalMs = interval };
        Assert.Contains(named, Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
    }
}
