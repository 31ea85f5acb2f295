using System.Collections.Concurrent;
using Google.Protobuf;
using Grpc.Core;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Tests.Fakes;

/// <summary>
/// An in-memory segment store on the gRPC carrier whose timing a test controls: it can hold the blocks of a segment
/// without answering (in flight), then seal the segment, making some of them durable with their acknowledgements lost
/// and rejecting the rest, as a store sealed in the middle of a writer's burst does. It deduplicates by writer id and
/// answers setups with the writer's last event number, its inherited ranges, and whether the segment is sealed.
/// </summary>
public sealed class FakeSegmentStore : global::Streams.Contracts.SegmentStore.SegmentStore.SegmentStoreBase
{
    private readonly ConcurrentDictionary<string, FakeSegment> _segments = new(StringComparer.Ordinal);

    public FakeSegment Add(string name) => _segments.GetOrAdd(name, n => new FakeSegment(n));

    public FakeSegment this[string name] => _segments[name];

    public void Remove(string name) => _segments.TryRemove(name, out _);

    public override async Task Append(IAsyncStreamReader<AppendRequest> requestStream, IServerStreamWriter<AppendReply> responseStream, ServerCallContext context)
    {
        var setups = new Dictionary<long, (Guid Writer, FakeSegment Segment)>();
        var replies = new AppendReplies(responseStream);
        while (await requestStream.MoveNext(context.CancellationToken))
        {
            var request = requestStream.Current;
            if (request.KindCase == AppendRequest.KindOneofCase.Setup)
            {
                var setup = request.Setup;
                if (!_segments.TryGetValue(setup.Segment, out var segment))
                {
                    await replies.SendAsync(new AppendReply { Rejected = new AppendRejected { RequestId = setup.RequestId, Error = AppendError.NoSuchSegment, Message = setup.Segment } });
                    continue;
                }

                var writer = new Guid(setup.WriterId.Span);
                setups[setup.RequestId] = (writer, segment);
                await replies.SendAsync(new AppendReply { Setup = segment.Setup(setup.RequestId, writer) });
                continue;
            }

            var block = request.Block;
            if (!setups.TryGetValue(block.RequestId, out var pair))
            {
                await replies.SendAsync(new AppendReply { Rejected = new AppendRejected { RequestId = block.RequestId, Error = AppendError.NotSetUp, LastEventNumber = block.LastEventNumber } });
                continue;
            }

            if (pair.Segment.Receive(pair.Writer, block, replies) is { } reply)
            {
                await replies.SendAsync(reply);
            }
        }
    }

    public override async Task<ReadSegmentReply> Read(ReadSegmentRequest request, ServerCallContext context)
    {
        if (!_segments.TryGetValue(request.Segment, out var segment))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"No segment {request.Segment}."));
        }

        if (segment.TakeReadFailure())
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "the store is going away"));
        }

        // Bounded by the request's wait.
        var waitUntil = DateTime.UtcNow.AddMilliseconds(request.WaitMillis);
        while (true)
        {
            if (segment.ReadDelay > TimeSpan.Zero)
            {
                await Task.Delay(segment.ReadDelay, context.CancellationToken);
            }

            var reply = segment.Read(request.Offset, request.MaxBytes);
            if (reply.Status != ReadStatus.AtTail || DateTime.UtcNow >= waitUntil)
            {
                return reply;
            }

            await Task.Delay(20, context.CancellationToken);
        }
    }

    public override Task<SegmentInfo> GetSegmentInfo(SegmentRequest request, ServerCallContext context) =>
        _segments.TryGetValue(request.Segment, out var segment)
            ? Task.FromResult(segment.Info())
            : throw new RpcException(new Status(StatusCode.NotFound, $"No segment {request.Segment}."));

    /// <summary>Replies of one Append call, written one at a time (the seal answers blocks from the test's thread).</summary>
    internal sealed class AppendReplies(IServerStreamWriter<AppendReply> stream)
    {
        private readonly SemaphoreSlim _lock = new(1, 1);

        public async Task SendAsync(AppendReply reply)
        {
            await _lock.WaitAsync();
            try
            {
                await stream.WriteAsync(reply);
            }
            catch (Exception)
            {
                // The call ended: the writer sets up again on another.
            }
            finally
            {
                _lock.Release();
            }
        }
    }
}

/// <summary>A block a fake segment stored: its event number, event count and key sample.</summary>
public sealed record StoredBlock(Guid Writer, long LastEventNumber, int EventCount, ulong KeySample);

/// <summary>One segment of <see cref="FakeSegmentStore"/>.</summary>
public sealed class FakeSegment(string name)
{
    private readonly object _lock = new();
    private readonly MemoryStream _data = new();
    private readonly Dictionary<Guid, long> _last = [];
    private readonly Dictionary<Guid, List<InheritedWriterRange>> _inherited = [];
    private readonly List<StoredBlock> _blocks = [];
    private readonly List<(Guid Writer, AppendBlock Block, FakeSegmentStore.AppendReplies Replies)> _held = [];
    private bool _holding;
    private bool _sealed;
    private long _start;
    private int _readFailures;

    public string Name { get; } = name;

    /// <summary>How long each read waits before it answers.</summary>
    public TimeSpan ReadDelay { get; set; }

    /// <summary>The next <paramref name="times"/> reads fail with UNAVAILABLE.</summary>
    public void FailReads(int times) => Volatile.Write(ref _readFailures, times);

    internal bool TakeReadFailure() => Interlocked.Decrement(ref _readFailures) >= 0;

    public byte[] Data
    {
        get
        {
            lock (_lock)
            {
                return _data.ToArray();
            }
        }
    }

    public IReadOnlyList<StoredBlock> Blocks
    {
        get
        {
            lock (_lock)
            {
                return [.. _blocks];
            }
        }
    }

    /// <summary>Blocks held in flight, unanswered.</summary>
    public int HeldCount
    {
        get
        {
            lock (_lock)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>Truncates the segment at <paramref name="offset"/>: a read below it is answered Truncated, naming the offset.</summary>
    public void Truncate(long offset)
    {
        lock (_lock)
        {
            _start = offset;
        }
    }

    /// <summary>Stores events directly (framed), as if written earlier.</summary>
    public void Write(byte[] framed)
    {
        lock (_lock)
        {
            _data.Write(framed);
        }
    }

    public void SetLast(Guid writer, long last)
    {
        lock (_lock)
        {
            _last[writer] = last;
        }
    }

    public void Inherit(Guid writer, double start, double end, long last)
    {
        lock (_lock)
        {
            (_inherited.TryGetValue(writer, out var list) ? list : _inherited[writer] = []).Add(new InheritedWriterRange { KeyStart = start, KeyEnd = end, LastEventNumber = last });
        }
    }

    /// <summary>From now on blocks are held in flight: neither stored nor answered.</summary>
    public void Hold()
    {
        lock (_lock)
        {
            _holding = true;
        }
    }

    /// <summary>Stops holding: the held blocks are stored and acknowledged, in the order they came.</summary>
    public void Release()
    {
        List<(AppendReply Reply, FakeSegmentStore.AppendReplies Replies)> answers = [];
        lock (_lock)
        {
            _holding = false;
            foreach (var (writer, block, replies) in _held)
            {
                Store(writer, block);
                answers.Add((new AppendReply { Appended = new DataAppended { RequestId = block.RequestId, LastEventNumber = block.LastEventNumber, SegmentLength = _data.Length } }, replies));
            }

            _held.Clear();
        }

        foreach (var (reply, replies) in answers)
        {
            _ = replies.SendAsync(reply);
        }
    }

    /// <summary>
    /// Seals the segment: the first <paramref name="durable"/> held blocks are stored, but their acknowledgements are
    /// lost; the other held blocks, and every later one, are rejected as sealed.
    /// </summary>
    public void Seal(int durable = 0)
    {
        List<(Guid Writer, AppendBlock Block, FakeSegmentStore.AppendReplies Replies)> held;
        lock (_lock)
        {
            _sealed = true;
            _holding = false;
            held = [.. _held];
            _held.Clear();
            foreach (var (writer, block, _) in held.Take(durable))
            {
                Store(writer, block);
            }
        }

        foreach (var (_, block, replies) in held.Skip(durable))
        {
            _ = replies.SendAsync(Sealed(block));
        }
    }

    internal AppendSetup Setup(long requestId, Guid writer)
    {
        lock (_lock)
        {
            var setup = new AppendSetup { RequestId = requestId, Segment = Name, LastEventNumber = _last.GetValueOrDefault(writer, -1), Sealed = _sealed };
            setup.Inherited.AddRange(_inherited.GetValueOrDefault(writer) ?? []);
            return setup;
        }
    }

    internal AppendReply? Receive(Guid writer, AppendBlock block, FakeSegmentStore.AppendReplies replies)
    {
        lock (_lock)
        {
            if (_sealed)
            {
                return Sealed(block);
            }

            if (_holding)
            {
                _held.Add((writer, block, replies));
                return null;
            }

            Store(writer, block);
            return new AppendReply { Appended = new DataAppended { RequestId = block.RequestId, LastEventNumber = block.LastEventNumber, SegmentLength = _data.Length } };
        }
    }

    internal ReadSegmentReply Read(long offset, int maxBytes)
    {
        lock (_lock)
        {
            var reply = new ReadSegmentReply { Offset = offset, SegmentLength = _data.Length, Sealed = _sealed, StartOffset = _start };
            if (offset < _start)
            {
                reply.Status = ReadStatus.Truncated;
                return reply;
            }

            if (offset >= _data.Length)
            {
                reply.Status = _sealed ? ReadStatus.EndOfSegment : ReadStatus.AtTail;
                return reply;
            }

            var count = (int)Math.Min(_data.Length - offset, maxBytes > 0 ? maxBytes : 1 << 20);
            reply.Status = ReadStatus.Ok;
            reply.Data = ByteString.CopyFrom(_data.GetBuffer(), (int)offset, count);
            return reply;
        }
    }

    internal SegmentInfo Info()
    {
        lock (_lock)
        {
            return new SegmentInfo { Segment = Name, Length = _data.Length, StartOffset = _start, Sealed = _sealed };
        }
    }

    private void Store(Guid writer, AppendBlock block)
    {
        if (block.LastEventNumber <= _last.GetValueOrDefault(writer, -1))
        {
            return;
        }

        _data.Write(block.Data.Span);
        _last[writer] = block.LastEventNumber;
        _blocks.Add(new StoredBlock(writer, block.LastEventNumber, block.EventCount, block.KeySample));
    }

    private static AppendReply Sealed(AppendBlock block) =>
        new() { Rejected = new AppendRejected { RequestId = block.RequestId, Error = AppendError.SegmentSealed, LastEventNumber = block.LastEventNumber, Message = "sealed" } };
}
