using Streams.Common.Naming;

namespace Streams.Common.Tests.Naming;

public sealed class NamingTests
{
    [Theory]
    [InlineData("orders")]
    [InlineData("a")]
    [InlineData("Sales-2026.eu_west")]
    [InlineData("9lives")]
    public void Accepts_valid_names(string name) => Assert.Null(NameValidator.Validate(name, "stream"));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("-orders", "start with a letter or a digit")]
    [InlineData(".hidden", "start with a letter or a digit")]
    [InlineData("a/b", "contains '/'")]
    [InlineData("has space", "contains ' '")]
    [InlineData("emoji✓", "contains '✓'")]
    public void Rejects_invalid_names_saying_why(string name, string reason) =>
        Assert.Contains(reason, NameValidator.Validate(name, "stream"));

    [Fact]
    public void Rejects_names_over_255_characters() =>
        Assert.Contains("255", NameValidator.Validate(new string('a', 256), "scope"));

    [Fact]
    public void Segment_names_round_trip()
    {
        var name = new SegmentName("shop", "orders", 7, 3);
        Assert.Equal("shop/orders/7.#epoch.3", name.ToString());
        Assert.True(SegmentName.TryParse(name.ToString(), out var parsed));
        Assert.Equal(name, parsed);
        Assert.Equal((3L << 32) | 7, name.Id);
        Assert.Equal(name, SegmentName.FromId("shop", "orders", name.Id));
    }

    [Theory]
    [InlineData("shop/orders")]
    [InlineData("shop/orders/7")]
    [InlineData("shop/orders/x.#epoch.0")]
    [InlineData("shop/orders/1.#epoch.-1")]
    [InlineData("sh op/orders/1.#epoch.0")]
    [InlineData("a/b/c/1.#epoch.0")]
    [InlineData(null)]
    public void Rejects_malformed_segment_names(string? text) => Assert.False(SegmentName.TryParse(text, out _));

    [Fact]
    public void Container_mapping_is_stable_and_in_range()
    {
        Assert.Equal(ContainerMapper.ContainerOf("shop/orders/0.#epoch.0", 16), ContainerMapper.ContainerOf("shop/orders/0.#epoch.0", 16));
        var used = new HashSet<int>();
        for (var i = 0; i < 200; i++)
        {
            var container = ContainerMapper.ContainerOf($"s/t/{i}.#epoch.0", 8);
            Assert.InRange(container, 0, 7);
            used.Add(container);
        }

        Assert.Equal(8, used.Count);
    }

    [Fact]
    public void A_segment_number_keeps_its_container_across_epochs()
    {
        // Placement is by scope/stream/number: later epochs of a number (and what is merged into it) stay local.
        var expected = (int)(System.IO.Hashing.XxHash64.HashToUInt64("shop/orders/3"u8) % 16);
        Assert.Equal(expected, ContainerMapper.ContainerOf("shop/orders/3", 16));
        Assert.Equal(expected, ContainerMapper.ContainerOf("shop/orders/3.#epoch.0", 16));
        Assert.Equal(expected, ContainerMapper.ContainerOf("shop/orders/3.#epoch.7", 16));
        var spread = Enumerable.Range(0, 64).Select(i => ContainerMapper.ContainerOf($"shop/orders/{i}.#epoch.{i}", 16)).Distinct().Count();
        Assert.True(spread > 8, $"64 numbers landed on only {spread} of 16 containers");
    }
}
