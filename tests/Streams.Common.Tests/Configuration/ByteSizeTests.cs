using Microsoft.Extensions.Configuration;
using Streams.Common.Configuration;

namespace Streams.Common.Tests.Configuration;

public sealed class ByteSizeTests
{
    [Theory]
    [InlineData("268435456", 268435456L)]
    [InlineData("256MiB", 256L << 20)]
    [InlineData(" 4 KiB ", 4096L)]
    [InlineData("1Gi", 1L << 30)]
    [InlineData("2TiB", 2L << 40)]
    [InlineData("100B", 100L)]
    public void Parses_bytes_and_binary_units(string text, long bytes) =>
        Assert.Equal(bytes, ByteSize.Parse(text).Bytes);

    [Theory]
    [InlineData("256MB")]
    [InlineData("-1")]
    [InlineData("1.5MiB")]
    [InlineData("")]
    [InlineData("99999999999TiB")]
    public void Refuses_what_it_would_have_to_guess(string text)
    {
        var error = Assert.Throws<FormatException>(() => ByteSize.Parse(text));
        Assert.Contains(text.Trim(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prints_the_largest_unit_that_divides_it()
    {
        Assert.Equal("256MiB", ByteSize.MiB(256).ToString());
        Assert.Equal("1000B", new ByteSize(1000).ToString());
        Assert.Equal("3KiB", new ByteSize(3072).ToString());
    }

    private sealed record Settings
    {
        public ByteSize Cache { get; init; } = ByteSize.MiB(1);
    }

    [Fact]
    public void Binds_from_configuration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["S:Cache"] = "64MiB" }).Build();
        Assert.Equal(ByteSize.MiB(64), configuration.GetSection("S").Get<Settings>()!.Cache);
    }
}
