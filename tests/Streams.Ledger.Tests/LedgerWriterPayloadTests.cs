using System.Text;
using Streams.Contracts.Bookie;

namespace Streams.Ledger.Tests;

/// <summary>
/// With Qw &gt; Qa an entry is acknowledged before every copy is written, yet the writer sends the caller's buffer itself:
/// a copy is made only for a send that had not read the bytes when the entry completed.
/// </summary>
public sealed class LedgerWriterPayloadTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_slow_copy_still_stores_the_original_bytes_after_the_caller_reused_its_buffer()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        var slow = writer.Metadata.Fragments[0].Bookies[2];
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Bookie(slow).BeforeAdd = _ => release.Task;

        var buffer = Encoding.UTF8.GetBytes("the original bytes of entry 0");
        var original = buffer.ToArray();
        Assert.Equal(0, await writer.AddAsync(buffer).WaitAsync(Bound)); // two copies acknowledged, the third not yet read

        Array.Fill(buffer, (byte)'x');                                   // the caller reuses its buffer at once
        release.SetResult();
        await writer.CloseAsync().WaitAsync(Bound);

        Assert.Equal(1, writer.CopiedPayloads);
        using var stored = await cluster.StoreOf(slow).ReadAsync(writer.LedgerId, 0);
        Assert.Equal(BookieStatus.Ok, stored.Status);
        Assert.Equal(original, stored.Payload.ToArray());
    }

    [Fact]
    public async Task Copies_that_read_the_bytes_before_the_entry_completes_need_no_copy()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        var buffer = new byte[256];
        for (var i = 0; i < 200; i++)
        {
            // One buffer for every entry, rewritten as soon as the entry is acknowledged: what the segment store does
            // with its pooled frame buffers.
            Array.Fill(buffer, (byte)i);
            await writer.AddAsync(buffer).WaitAsync(Bound);
        }

        await writer.CloseAsync().WaitAsync(Bound);
        Assert.Equal(0, writer.CopiedPayloads);
        foreach (var bookie in writer.Metadata.Fragments[0].Bookies)
        {
            for (var i = 0; i < 200; i += 37)
            {
                using var stored = await cluster.StoreOf(bookie).ReadAsync(writer.LedgerId, i);
                Assert.Equal(BookieStatus.Ok, stored.Status);
                Assert.All(stored.Payload.ToArray(), b => Assert.Equal((byte)i, b));
            }
        }
    }
}
