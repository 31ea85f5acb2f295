using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Bookie.Server;
using Streams.Bookie.Storage;
using Streams.Common.Configuration;
using Streams.Common.Hashing;
using Streams.Common.Wire;
using Streams.Contracts.Bookie;
using Streams.Testing;

namespace Streams.Bookie.Tests.Server;

/// <summary>Not run beside other tests: it counts the bookie's reads through its (process-wide) meter.</summary>
[CollectionDefinition(nameof(BookieConnectionHandlerCollection), DisableParallelization = true)]
public sealed class BookieConnectionHandlerCollection;

[Collection(nameof(BookieConnectionHandlerCollection))]
public sealed class BookieConnectionHandlerTests : IDisposable
{
    private const int EntrySize = 256 * 1024;
    private const int Entries = 8;

    private readonly TempDirectory _dir = new("bookie-conn");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_client_that_does_not_read_its_replies_makes_the_bookie_stop_reading_it_not_hold_every_reply()
    {
        long reads = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == BookieMetrics.MeterName && instrument.Name == "streams.bookie.read_entries")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref reads, value));
        listener.Start();

        var options = new BookieOptions
        {
            DataDirectory = _dir.Path,
            JournalSegmentSize = ByteSize.MiB(4),
            MaxEntrySize = ByteSize.KiB(512),
            GcInterval = TimeSpan.FromHours(1),
            MaxConnectionInFlightBytes = ByteSize.MiB(4),
        };
        await using var store = await BookieStore.OpenAsync(options, NullLogger.Instance, TestContext.Current.CancellationToken);
        for (var i = 0; i < Entries; i++)
        {
            var payload = new byte[EntrySize];
            payload.AsSpan().Fill((byte)i);
            Assert.Equal(BookieStatus.Ok, await store.AddAsync(1, i, i - 1, Crc32C.Compute(payload), false, new ReadOnlySequence<byte>(payload)));
        }

        var port = Ports.Free();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(store);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.UseConnectionHandler<BookieConnectionHandler>()));
        await using var app = builder.Build();
        await app.StartAsync(TestContext.Current.CancellationToken);

        // 1000 reads of 256 KiB: 250 MiB of replies if the bookie held them all.
        const int Requests = 1000;
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 64 * 1024 };
        await client.ConnectAsync(IPAddress.Loopback, port, TestContext.Current.CancellationToken);
        var requests = new ArrayBufferWriter<byte>();
        for (var i = 0; i < Requests; i++)
        {
            RawFraming.WriteMessage(requests, new BookieRequest { Read = new ReadEntryRequest { RequestId = i + 1, LedgerId = 1, EntryId = i % Entries } });
        }

        await client.SendAsync(requests.WrittenMemory, TestContext.Current.CancellationToken);
        await Task.Delay(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken);

        // Held: the 4 MiB budget, plus what the socket buffers take. Far from all of them.
        var served = Interlocked.Read(ref reads);
        TestContext.Current.TestOutputHelper?.WriteLine($"entries read for a client that reads no replies: {served} of {Requests}");
        Assert.True(served < 200, $"The bookie read {served} of {Requests} entries for a client that reads none of its replies.");

        // Once the client reads, every reply comes, intact.
        var buffer = new byte[1 << 20];
        var stash = new List<byte>();
        var replies = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (replies < Requests)
        {
            var n = await client.ReceiveAsync(buffer, timeout.Token);
            Assert.True(n > 0, $"The bookie closed the connection after {replies} replies.");
            stash.AddRange(buffer.AsSpan(0, n));
            replies += TakeFrames(stash);
        }

        Assert.Equal(Requests, replies);
    }

    /// <summary>Removes the whole frames at the start of <paramref name="stash"/>, checking each; returns how many.</summary>
    private static int TakeFrames(List<byte> stash)
    {
        var taken = 0;
        var at = 0;
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(stash);
        while (span.Length - at >= RawFraming.HeaderSize)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(span[at..]);
            if (span.Length - at - RawFraming.HeaderSize < length)
            {
                break;
            }

            var reply = BookieReply.Parser.ParseFrom(span.Slice(at + RawFraming.HeaderSize, length));
            Assert.Equal(BookieReply.KindOneofCase.Read, reply.KindCase);
            Assert.Equal(BookieStatus.Ok, reply.Read.Status);
            Assert.Equal(EntrySize, reply.Read.Payload.Length);
            Assert.Equal((byte)reply.Read.EntryId, reply.Read.Payload.Span[^1]);
            at += RawFraming.HeaderSize + length;
            taken++;
        }

        stash.RemoveRange(0, at);
        return taken;
    }
}
