using System.Text;
using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.Common.Server.Tests.Metadata;

public sealed class FileMetadataStoreContractTests : MetadataStoreContractTests
{
    private readonly TempDirectory _dir = new("metadata-contract");
    private FileMetadataStore? _open;

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        _dir.Dispose();
    }

    /// <summary>One process, one store: reopening after the previous one was disposed.</summary>
    private protected override Task<IMetadataStore> OpenAsync()
    {
        _open = FileMetadataStore.Open(_dir.Path);
        return Task.FromResult<IMetadataStore>(_open);
    }

    private protected override Task<IMetadataStore?> OpenSecondSessionAsync() => Task.FromResult<IMetadataStore?>(null);
}

/// <summary>What only the file-backed store does: its journal.</summary>
public sealed class FileMetadataStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new("metadata");

    public void Dispose() => _dir.Dispose();

    private string JournalPath => Path.Combine(_dir.Path, "metadata.journal");

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Creates the nodes in a store that is then closed, and returns its journal's path.</summary>
    private async Task<string> CreateAndCloseAsync(params (string Path, string Data)[] nodes)
    {
        await using (var store = FileMetadataStore.Open(_dir.Path))
        {
            foreach (var (path, data) in nodes)
            {
                await store.TryCreateAsync(path, Bytes(data));
            }
        }

        return JournalPath;
    }

    [Fact]
    public async Task Everything_survives_reopening()
    {
        await using (var store = FileMetadataStore.Open(_dir.Path))
        {
            await store.TryCreateAsync("/keep", Bytes("v0"));
            await store.TrySetAsync("/keep", Bytes("v1"), 0);
            await store.TryCreateAsync("/gone", Bytes("x"));
            await store.TryDeleteAsync("/gone");
        }

        await using var reopened = FileMetadataStore.Open(_dir.Path);
        var value = await reopened.GetAsync("/keep");
        Assert.Equal(("v1", 1L), (Encoding.UTF8.GetString(value!.Value.Data), value.Value.Version));
        Assert.Null(await reopened.GetAsync("/gone"));
    }

    [Fact]
    public async Task A_torn_last_record_is_dropped_and_the_store_opens()
    {
        var journal = await CreateAndCloseAsync(("/safe", "acknowledged"), ("/torn", "cut short by a crash"));
        var length = new FileInfo(journal).Length;
        using (var file = new FileStream(journal, FileMode.Open))
        {
            file.SetLength(length - 5);
        }

        await using var reopened = FileMetadataStore.Open(_dir.Path);
        Assert.NotNull(await reopened.GetAsync("/safe"));
        Assert.Null(await reopened.GetAsync("/torn"));
        Assert.True(await reopened.TryCreateAsync("/after", Bytes("new")));
    }

    [Fact]
    public async Task Corruption_before_the_last_record_refuses_to_open()
    {
        var journal = await CreateAndCloseAsync(("/first", "11111111"), ("/second", "22222222"));
        var bytes = await File.ReadAllBytesAsync(journal, TestContext.Current.CancellationToken);
        bytes[20] ^= 0xFF;
        await File.WriteAllBytesAsync(journal, bytes, TestContext.Current.CancellationToken);

        var error = Assert.Throws<InvalidDataException>(() => FileMetadataStore.Open(_dir.Path));
        Assert.Contains("corrupt", error.Message);
    }

    [Fact]
    public async Task The_journal_is_compacted_as_it_grows()
    {
        var value = new byte[1024];
        await using (var store = FileMetadataStore.Open(_dir.Path))
        {
            await store.TryCreateAsync("/hot", value);
            for (var i = 0; i < 3000; i++)
            {
                await store.TrySetAsync("/hot", value, -1);
            }
        }

        // 3,000 updates of 1 KiB would be 3 MiB uncompacted.
        Assert.True(new FileInfo(JournalPath).Length < 2 * 1024 * 1024);
        await using var reopened = FileMetadataStore.Open(_dir.Path);
        Assert.Equal(3000, (await reopened.GetAsync("/hot"))!.Value.Version);
    }

    [Fact]
    public async Task A_slow_compaction_does_not_hold_writes_back_and_keeps_what_they_wrote_meanwhile()
    {
        var value = new byte[1024];
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (var store = FileMetadataStore.Open(_dir.Path))
        {
            store.BeforeCompactionSwap = () =>
            {
                held.TrySetResult();
                return release.Task;
            };
            await store.TryCreateAsync("/hot", value);
            for (var i = 0; i < 3000 && !held.Task.IsCompleted; i++)
            {
                await store.TrySetAsync("/hot", value, -1);
            }

            // The compacted copy is written and waits to be swapped in: writes go on, durable, meanwhile.
            await held.Task.WaitAsync(TimeSpan.FromSeconds(10));
            for (var i = 0; i < 20; i++)
            {
                Assert.True(await store.TryCreateAsync($"/during/{i}", Bytes($"written during the compaction {i}")).AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
            }

            var version = (await store.GetAsync("/hot"))!.Value.Version;
            Assert.NotNull(await store.TrySetAsync("/hot", Bytes("last"), version).AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
            release.TrySetResult();
            await store.Compaction.WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.True(new FileInfo(JournalPath).Length < 1024 * 1024, $"The journal was not compacted ({new FileInfo(JournalPath).Length} bytes).");
        await using var reopened = FileMetadataStore.Open(_dir.Path);
        Assert.Equal("last", Encoding.UTF8.GetString((await reopened.GetAsync("/hot"))!.Value.Data));
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal($"written during the compaction {i}", Encoding.UTF8.GetString((await reopened.GetAsync($"/during/{i}"))!.Value.Data));
        }
    }

    [Fact]
    public async Task The_journal_is_compacted_under_concurrent_writers_without_losing_a_write()
    {
        const int Writers = 16;
        const int Sets = 200;
        var value = new byte[1024];
        await using (var store = FileMetadataStore.Open(_dir.Path))
        {
            await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
            {
                await store.TryCreateAsync($"/hot/{w}", value);
                for (var i = 0; i < Sets; i++)
                {
                    Assert.Equal(i + 1, await store.TrySetAsync($"/hot/{w}", value, i));
                }
            })));
        }

        // 3,200 updates of 1 KiB would be 3.2 MiB uncompacted.
        Assert.True(new FileInfo(JournalPath).Length < 2 * 1024 * 1024);
        await using var reopened = FileMetadataStore.Open(_dir.Path);
        for (var w = 0; w < Writers; w++)
        {
            Assert.Equal(Sets, (await reopened.GetAsync($"/hot/{w}"))!.Value.Version);
        }
    }

    [Fact]
    public async Task A_mutation_is_acknowledged_after_its_fsync_and_concurrent_ones_share_fsyncs()
    {
        const int Writers = 64;
        await using (var store = FileMetadataStore.Open(_dir.Path))
        {
            Assert.True(await store.TryCreateAsync("/alone", Bytes("first")));
            Assert.Equal(1, store.FsyncCount);

            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var writes = Enumerable.Range(0, Writers).Select(i => Task.Run(async () =>
            {
                await start.Task;
                return await store.TryCreateAsync($"/group/{i}", Bytes($"value {i}"));
            })).ToList();
            start.SetResult();
            Assert.All(await Task.WhenAll(writes), Assert.True);

            var fsyncs = store.FsyncCount - 1;
            TestContext.Current.TestOutputHelper?.WriteLine($"{Writers} concurrent mutations, {fsyncs} fsyncs ({(double)Writers / fsyncs:F1} mutations per fsync)");
            Assert.True(fsyncs < Writers, $"{Writers} concurrent mutations took {fsyncs} fsyncs.");
        }

        await using var reopened = FileMetadataStore.Open(_dir.Path);
        for (var i = 0; i < Writers; i++)
        {
            Assert.Equal($"value {i}", Encoding.UTF8.GetString((await reopened.GetAsync($"/group/{i}"))!.Value.Data));
        }
    }

    [Fact]
    public async Task Callers_waiting_when_the_store_is_disposed_fail_instead_of_hanging()
    {
        var store = FileMetadataStore.Open(_dir.Path);
        var writing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writers = Enumerable.Range(0, 16).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 10_000; i++)
            {
                try
                {
                    await store.TryCreateAsync($"/late/{w}/{i}", Bytes("x"));
                    writing.TrySetResult();
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
            }
        })).ToList();

        // Dispose while writers queue on the store's lock: each must finish, none may wait forever.
        await writing.Task.WaitAsync(TestContext.Current.CancellationToken);
        await store.DisposeAsync();
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        await store.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await store.GetAsync("/late/0/0"));
    }

    [Fact]
    public async Task A_second_process_cannot_open_the_same_store()
    {
        await using var store = FileMetadataStore.Open(_dir.Path);
        Assert.ThrowsAny<IOException>(() => FileMetadataStore.Open(_dir.Path));
    }
}
