using System.Security.Cryptography;
using Amazon.Runtime;
using Streams.Testing;
using Streams.Tier2.FileSystem;
using Streams.Tier2.S3;

namespace Streams.Tier2.Tests;

/// <summary>
/// The contract every Tier 2 implementation meets, run against the filesystem and against a real S3-protocol server
/// (s3rver). Every read is compared byte for byte with what was written.
/// </summary>
public abstract class ChunkStorageContractTests
{
    private protected abstract IChunkStorage Storage { get; }

    private static byte[] Random(int length) => RandomNumberGenerator.GetBytes(length);

    private static string Unique(string name) => $"t{Guid.NewGuid():N}/{name}";

    [Fact]
    public async Task A_written_chunk_reads_back_byte_for_byte_whole_and_by_range()
    {
        var name = Unique("seg/0000000000000000000.a");
        var data = Random(300_001);
        await Storage.WriteAsync(name, data, TestContext.Current.CancellationToken);

        Assert.True(await Storage.ExistsAsync(name, TestContext.Current.CancellationToken));
        Assert.Equal(data.Length, await Storage.GetLengthAsync(name, TestContext.Current.CancellationToken));

        var whole = new byte[data.Length];
        Assert.Equal(data.Length, await Storage.ReadAsync(name, 0, whole, TestContext.Current.CancellationToken));
        Assert.Equal(data, whole);

        var range = new byte[1000];
        Assert.Equal(1000, await Storage.ReadAsync(name, 12_345, range, TestContext.Current.CancellationToken));
        Assert.Equal(data.AsSpan(12_345, 1000).ToArray(), range);
    }

    [Fact]
    public async Task A_read_past_the_end_returns_what_is_there()
    {
        var name = Unique("short");
        var data = Random(100);
        await Storage.WriteAsync(name, data, TestContext.Current.CancellationToken);

        var buffer = new byte[64];
        Assert.Equal(40, await Storage.ReadAsync(name, 60, buffer, TestContext.Current.CancellationToken));
        Assert.Equal(data.AsSpan(60).ToArray(), buffer.AsSpan(0, 40).ToArray());
        Assert.Equal(0, await Storage.ReadAsync(name, 100, buffer, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Writing_again_replaces_the_chunk_whole()
    {
        var name = Unique("replaced");
        await Storage.WriteAsync(name, Random(5000), TestContext.Current.CancellationToken);
        var second = Random(1234);
        await Storage.WriteAsync(name, second, TestContext.Current.CancellationToken);

        Assert.Equal(second.Length, await Storage.GetLengthAsync(name, TestContext.Current.CancellationToken));
        var buffer = new byte[5000];
        var read = await Storage.ReadAsync(name, 0, buffer, TestContext.Current.CancellationToken);
        Assert.Equal(second, buffer.AsSpan(0, read).ToArray());
    }

    [Fact]
    public async Task An_empty_chunk_exists_with_length_zero()
    {
        var name = Unique("empty");
        await Storage.WriteAsync(name, ReadOnlyMemory<byte>.Empty, TestContext.Current.CancellationToken);
        Assert.True(await Storage.ExistsAsync(name, TestContext.Current.CancellationToken));
        Assert.Equal(0, await Storage.GetLengthAsync(name, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_missing_chunk_is_reported_as_missing()
    {
        var name = Unique("missing");
        Assert.False(await Storage.ExistsAsync(name, TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<ChunkNotFoundException>(() => Storage.GetLengthAsync(name, TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<ChunkNotFoundException>(() => Storage.ReadAsync(name, 0, new byte[10], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Delete_removes_a_chunk_and_is_idempotent()
    {
        var name = Unique("deleted");
        await Storage.WriteAsync(name, Random(10), TestContext.Current.CancellationToken);
        await Storage.DeleteAsync(name, TestContext.Current.CancellationToken);
        Assert.False(await Storage.ExistsAsync(name, TestContext.Current.CancellationToken));
        await Storage.DeleteAsync(name, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task List_returns_each_chunk_under_a_prefix_once()
    {
        var root = $"t{Guid.NewGuid():N}";
        string[] names = [$"{root}/a/0000000000000000200.x", $"{root}/a/0000000000000000000.x", $"{root}/a/0000000000000000100.y", $"{root}/b/0000000000000000000.x"];
        foreach (var name in names)
        {
            await Storage.WriteAsync(name, Random(3), TestContext.Current.CancellationToken);
        }

        Assert.Equal([names[1], names[2], names[0]], Sorted(await List(Storage, $"{root}/a/")));
        Assert.Equal(4, (await List(Storage, root)).Count);
        Assert.Empty(await List(Storage, $"{root}/c/"));
    }

    [Fact]
    public async Task Chunks_can_be_deleted_while_they_are_listed()
    {
        var root = $"t{Guid.NewGuid():N}";
        var names = Enumerable.Range(0, 7).Select(i => $"{root}/s{i % 3}/{i:D19}.o").Order(StringComparer.Ordinal).ToArray();
        foreach (var name in names)
        {
            await Storage.WriteAsync(name, Random(2), TestContext.Current.CancellationToken);
        }

        var seen = new List<string>();
        await foreach (var name in Storage.ListAsync($"{root}/", TestContext.Current.CancellationToken))
        {
            seen.Add(name);
            await Storage.DeleteAsync(name, TestContext.Current.CancellationToken);
        }

        Assert.Equal(names, Sorted(seen));
        Assert.Empty(await List(Storage, $"{root}/"));
    }

    private static List<string> Sorted(List<string> names)
    {
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    private protected static async Task<List<string>> List(IChunkStorage storage, string prefix)
    {
        var names = new List<string>();
        await foreach (var name in storage.ListAsync(prefix, TestContext.Current.CancellationToken))
        {
            names.Add(name);
        }

        return names;
    }

    [Theory]
    [InlineData("")]
    [InlineData("../escape")]
    [InlineData("a//b")]
    [InlineData("/absolute")]
    [InlineData("a/./b")]
    [InlineData("sp ace")]
    public async Task Bad_names_are_refused_with_a_clear_error(string name)
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Storage.WriteAsync(name, new byte[1], TestContext.Current.CancellationToken));
        Assert.Contains("hunk name", error.Message, StringComparison.Ordinal);
    }
}

public sealed class FileChunkStorageTests : ChunkStorageContractTests, IDisposable
{
    private readonly TempDirectory _dir = new("tier2");
    private readonly FileChunkStorage _storage;

    public FileChunkStorageTests()
    {
        _storage = new FileChunkStorage(_dir.Path);
    }

    private protected override IChunkStorage Storage => _storage;

    [Fact]
    public async Task Leftover_temporary_files_of_a_crashed_write_are_not_listed()
    {
        await _storage.WriteAsync("seg/1", new byte[] { 1 }, TestContext.Current.CancellationToken);
        await File.WriteAllBytesAsync(Path.Combine(_dir.Path, "seg", "2.tmp-0123"), [2], TestContext.Current.CancellationToken);
        Assert.Equal(["seg/1"], await List(_storage, "seg/"));
    }

    [Fact]
    public async Task The_filesystem_lists_in_ordinal_order_of_whole_names_even_where_a_folder_and_a_longer_name_share_a_start()
    {
        // '-' < '.' < '/' < letters: "x/a-d" < "x/a.c" < "x/a/b" < "x/ab", and "x/a/b" is a chunk inside a folder.
        var root = $"t{Guid.NewGuid():N}";
        string[] ordered = [$"{root}/a-d", $"{root}/a.c", $"{root}/a/b", $"{root}/a/b.0", $"{root}/ab"];
        foreach (var name in ordered.Reverse())
        {
            await _storage.WriteAsync(name, new byte[] { 7 }, TestContext.Current.CancellationToken);
        }

        Assert.Equal(ordered, await List(_storage, $"{root}/"));
        Assert.Equal([$"{root}/a/b", $"{root}/a/b.0"], await List(_storage, $"{root}/a/"));
        Assert.Equal(ordered, await List(_storage, $"{root}/a")); // a plain string prefix, not only a folder
        Assert.Equal([$"{root}/a.c"], await List(_storage, $"{root}/a."));
    }

    [Fact]
    public async Task A_directory_found_on_the_way_is_fsynced_into_its_parent_before_the_first_chunk_in_it_is_written()
    {
        var syncs = new List<string>();
        var storage = new FileChunkStorage(_dir.Path, syncs.Add);

        // Created by another writer, or by a run that crashed, and perhaps never fsynced into its parent.
        Directory.CreateDirectory(Path.Combine(_dir.Path, "found", "seg"));
        await storage.WriteAsync("found/seg/1", new byte[] { 1 }, TestContext.Current.CancellationToken);
        var root = Path.GetFullPath(_dir.Path);
        Assert.Equal([root, Path.Combine(root, "found"), Path.Combine(root, "found", "seg")], syncs);

        // Once per process: the next chunk there costs only the fsync after its rename.
        await storage.WriteAsync("found/seg/2", new byte[] { 2 }, TestContext.Current.CancellationToken);
        Assert.Equal(4, syncs.Count);
    }

    [Theory]
    [InlineData("../")]
    [InlineData("a/../../")]
    public async Task A_list_prefix_cannot_leave_the_root(string prefix)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => List(_storage, prefix));
    }

    public void Dispose() => _dir.Dispose();
}

/// <summary>s3rver, started once for the class.</summary>
public sealed class S3ServerFixture : IAsyncLifetime
{
    public S3Server Server { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Server = await S3Server.StartAsync();

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();

    internal S3ChunkStorage Open(string prefix, int partSize = 8 * 1024 * 1024, HttpClientFactory? http = null) => new(
        new S3ChunkStorageOptions
        {
            Bucket = Server.Bucket,
            Prefix = prefix,
            Endpoint = Server.Endpoint,
            AccessKey = S3Server.AccessKey,
            SecretKey = S3Server.SecretKey,
            MultipartPartSize = partSize,
            RequestTimeout = TimeSpan.FromSeconds(5),
        },
        http);
}

public sealed class S3ChunkStorageTests : ChunkStorageContractTests, IClassFixture<S3ServerFixture>, IAsyncDisposable
{
    private readonly S3ServerFixture _s3;
    private readonly S3ChunkStorage _storage;

    public S3ChunkStorageTests(S3ServerFixture s3)
    {
        _s3 = s3;
        _storage = s3.Open("tests/prefix");
    }

    private protected override IChunkStorage Storage => _storage;

    [Fact]
    public async Task A_chunk_larger_than_a_part_goes_up_in_parts_and_reads_back_whole()
    {
        await using var storage = _s3.Open("multipart", partSize: 5 * 1024 * 1024);
        var data = RandomNumberGenerator.GetBytes((12 * 1024 * 1024) + 17);
        await storage.WriteAsync("big/chunk", data, TestContext.Current.CancellationToken);

        var back = new byte[data.Length];
        Assert.Equal(data.Length, await storage.ReadAsync("big/chunk", 0, back, TestContext.Current.CancellationToken));
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task The_prefix_keeps_chunks_apart()
    {
        await using var other = _s3.Open("another/prefix");
        await other.WriteAsync("same/name", new byte[] { 1, 2, 3 }, TestContext.Current.CancellationToken);
        Assert.False(await _storage.ExistsAsync("same/name", TestContext.Current.CancellationToken));
        Assert.Equal(["same/name"], await List(other, "same/"));
    }

    [Fact]
    public async Task An_unreachable_server_is_reported_as_unavailable()
    {
        await using var storage = new S3ChunkStorage(new S3ChunkStorageOptions
        {
            Bucket = "streams",
            Endpoint = $"http://127.0.0.1:{Ports.Free()}",
            AccessKey = S3Server.AccessKey,
            SecretKey = S3Server.SecretKey,
            RequestTimeout = TimeSpan.FromSeconds(2),
        });
        await Assert.ThrowsAsync<ChunkStorageUnavailableException>(() => storage.WriteAsync("x/y", new byte[] { 1 }, TestContext.Current.CancellationToken));
    }

    public async ValueTask DisposeAsync() => await _storage.DisposeAsync();
}
