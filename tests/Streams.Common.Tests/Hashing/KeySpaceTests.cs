using Streams.Common.Hashing;

namespace Streams.Common.Tests.Hashing;

public sealed class KeySpaceTests
{
    // The published routing-key vectors of docs/routing-keys.md.
    [Theory]
    [InlineData("", 0.93467493153170589)]
    [InlineData("a", 0.82151442432363952)]
    [InlineData("key-0", 0.073653245131934941)]
    [InlineData("customer-42", 0.79074996182187907)]
    [InlineData("héllo wörld ✓", 0.20644483634437927)]
    public void Maps_keys_to_the_documented_points(string key, double expected) =>
        Assert.Equal(expected, KeySpace.PointOf(key), 15);

    [Fact]
    public void Points_are_in_the_unit_interval_and_spread()
    {
        var buckets = new int[10];
        for (var i = 0; i < 10_000; i++)
        {
            var point = KeySpace.PointOf("key-" + i);
            Assert.InRange(point, 0.0, 0.9999999999999999);
            buckets[(int)(point * 10)]++;
        }

        // Uniform would be 1,000 per bucket; a hash this far off would be broken.
        Assert.All(buckets, count => Assert.InRange(count, 850, 1150));
    }

    [Fact]
    public void Long_keys_hash_without_stack_overflow() =>
        Assert.InRange(KeySpace.PointOf(new string('k', 10_000)), 0.0, 1.0);
}
