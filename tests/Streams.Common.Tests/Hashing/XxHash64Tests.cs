using System.IO.Hashing;
using System.Text;

namespace Streams.Common.Tests.Hashing;

/// <summary>The XXH64 that routing keys and container placement rest on (System.IO.Hashing), pinned to the reference vectors.</summary>
public sealed class XxHash64Tests
{
    // Expected values from xxHash's reference implementation (xxhash-wasm, compiled from the C sources); the first
    // four are also xxHash's published vectors. They cover the < 4, < 8, < 32 byte tails and the 32-byte stripes.
    [Theory]
    [InlineData("", 0xEF46DB3751D8E999UL)]
    [InlineData("a", 0xD24EC4F1A98C6E5BUL)]
    [InlineData("abc", 0x44BC2CF5AD770999UL)]
    [InlineData("Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1UL)]
    [InlineData("0123456789abcdef0123456789abcde", 0x1FDFC63FEBACFDE7UL)]
    [InlineData("0123456789abcdef0123456789abcdef", 0x642A94958E71E6C5UL)]
    [InlineData("0123456789abcdef0123456789abcdef0", 0xE87684F08D6D0816UL)]
    [InlineData("héllo wörld ✓", 0x34D9919C86F55AC4UL)]
    [InlineData("key-0", 0x12DAF06715FFA373UL)]
    public void Matches_the_reference_implementation(string input, ulong expected) =>
        Assert.Equal(expected, XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(input)));

    [Fact]
    public void Hundred_byte_input_uses_several_stripes() =>
        Assert.Equal(0x92F0DE5A88A3C094UL, XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(new string('x', 100))));

    [Fact]
    public void Seed_changes_the_hash() =>
        Assert.NotEqual(XxHash64.HashToUInt64("abc"u8, 0), XxHash64.HashToUInt64("abc"u8, 1));
}
