using System.Globalization;
using System.IO.Hashing;
using System.Text;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>Our XXH64 against xxHash's reference C implementation (compiled to WebAssembly): other-language clients route keys as we do.</summary>
public sealed class HashInteropTests
{
    [Fact]
    public async Task Routing_key_hash_matches_the_reference_implementation()
    {
        var random = new Random(20261122);
        var keys = new List<string> { string.Empty, "a", "customer-42", "héllo wörld ✓" };
        for (var length = 1; length <= 80; length += 7)
        {
            keys.Add(new string(Enumerable.Range(0, length).Select(_ => (char)random.Next('!', '~')).ToArray()));
        }

        var reference = (await Node.RunAsync("xxh64.mjs", [.. keys])).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(keys.Count, reference.Length);
        for (var i = 0; i < keys.Count; i++)
        {
            Assert.Equal(ulong.Parse(reference[i], NumberStyles.HexNumber, CultureInfo.InvariantCulture), XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(keys[i])));
        }
    }
}
