using System.Collections.Concurrent;
using Grpc.Core;
using Streams.Common.Naming;
using Streams.Contracts.Controller;

namespace Streams.Client.Tests.Fakes;

/// <summary>
/// A controller that knows one stream's segments as a test lays them out: every epoch's segments with their
/// predecessors, the current epoch (segments of a later one are not visible until a test completes that scale), and what GetSuccessors answers (optionally empty a number of times first, as
/// while a scale is completing). Segment endpoints all point at the fake segment store on the same host.
/// </summary>
public sealed class FakeController : global::Streams.Contracts.Controller.Controller.ControllerBase
{
    private readonly object _lock = new();
    private readonly List<SegmentDescriptor> _segments = [];
    private readonly ConcurrentDictionary<string, int> _emptyAnswers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int Times, StatusCode Code)> _failures = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _moved = new(StringComparer.Ordinal);
    private StreamState _state = StreamState.Active;
    private int _epoch;

    public string Scope { get; } = "test";

    public string Stream { get; } = "s";

    /// <summary>The gRPC address of the host, set when it starts.</summary>
    public string Uri { get; set; } = string.Empty;

    /// <summary>GetSuccessors calls answered so far.</summary>
    public int SuccessorCalls;

    public static string NameOf(int epoch, int number) => $"test/s/{number}.#epoch.{epoch}";

    public static long IdOf(int epoch, int number) => SegmentName.ComposeId(epoch, number);

    /// <summary>Adds a segment of <paramref name="epoch"/>; <paramref name="predecessors"/> are (epoch, number) pairs.</summary>
    public SegmentRange AddSegment(int epoch, int number, double start, double end, params (int Epoch, int Number)[] predecessors)
    {
        var range = new SegmentRange { SegmentId = IdOf(epoch, number), Segment = NameOf(epoch, number), KeyStart = start, KeyEnd = end };
        var descriptor = new SegmentDescriptor { Segment = range, CreatedEpoch = epoch };
        descriptor.PredecessorIds.AddRange(predecessors.Select(p => IdOf(p.Epoch, p.Number)));
        lock (_lock)
        {
            _segments.Add(descriptor);
        }

        return range;
    }

    /// <summary>Makes <paramref name="epoch"/> the current one: <paramref name="sealedSegments"/> were replaced by it.</summary>
    public void CompleteScale(int epoch, params string[] sealedSegments)
    {
        lock (_lock)
        {
            foreach (var segment in sealedSegments)
            {
                _segments.Single(s => s.Segment.Segment == segment).SealedEpoch = epoch;
            }

            _epoch = epoch;
        }
    }

    public void SealStream()
    {
        lock (_lock)
        {
            _state = StreamState.Sealed;
        }
    }

    /// <summary>GetSuccessors for <paramref name="segment"/> answers empty this many times before the real answer.</summary>
    public void AnswerEmpty(string segment, int times) => _emptyAnswers[segment] = times;

    /// <summary>GetSuccessors for <paramref name="segment"/> fails with <paramref name="code"/> this many times before it answers.</summary>
    public void FailSuccessors(string segment, int times, StatusCode code) => _failures[segment] = (times, code);

    /// <summary>Names <paramref name="storeUri"/> (another fake host's gRPC address) as <paramref name="segment"/>'s store from now on.</summary>
    public void Move(string segment, string storeUri) => _moved[segment] = storeUri;

    public override Task<SegmentEndpoint> GetSegmentEndpoint(SegmentRef request, ServerCallContext context) =>
        Task.FromResult(new SegmentEndpoint { Segment = request.Segment, Host = "127.0.0.1", GrpcUri = _moved.GetValueOrDefault(request.Segment, Uri) });

    public override Task<ActiveSegments> GetActiveSegments(StreamRef request, ServerCallContext context)
    {
        lock (_lock)
        {
            var reply = new ActiveSegments { State = _state };
            if (_state != StreamState.Sealed)
            {
                reply.Segments.AddRange(_segments.Where(s => !s.HasSealedEpoch && s.CreatedEpoch <= _epoch).Select(s => s.Segment));
            }

            return Task.FromResult(reply);
        }
    }

    public override Task<SegmentList> ListSegments(StreamRef request, ServerCallContext context)
    {
        lock (_lock)
        {
            var reply = new SegmentList { State = _state, Epoch = _epoch };
            reply.Segments.AddRange(_segments.Where(s => s.CreatedEpoch <= _epoch).Select(s => s.Clone()));
            return Task.FromResult(reply);
        }
    }

    public override Task<SuccessorsReply> GetSuccessors(SegmentRef request, ServerCallContext context)
    {
        Interlocked.Increment(ref SuccessorCalls);
        if (_failures.TryGetValue(request.Segment, out var failure) && failure.Times > 0)
        {
            _failures[request.Segment] = (failure.Times - 1, failure.Code);
            throw new RpcException(new Status(failure.Code, "the controller is failing over"));
        }

        lock (_lock)
        {
            var reply = new SuccessorsReply { State = _state };
            var self = _segments.SingleOrDefault(s => s.Segment.Segment == request.Segment)
                ?? throw new RpcException(new Status(StatusCode.NotFound, $"No segment {request.Segment}."));
            if (_emptyAnswers.TryGetValue(request.Segment, out var empty) && empty > 0)
            {
                _emptyAnswers[request.Segment] = empty - 1;
                reply.State = StreamState.Active;
                return Task.FromResult(reply);
            }

            if (self.HasSealedEpoch)
            {
                foreach (var successor in _segments.Where(s => s.CreatedEpoch == self.SealedEpoch
                    && s.Segment.KeyStart < self.Segment.KeyEnd && self.Segment.KeyStart < s.Segment.KeyEnd))
                {
                    var entry = new SuccessorSegment { Segment = successor.Segment };
                    entry.PredecessorIds.AddRange(successor.PredecessorIds);
                    reply.Successors.Add(entry);
                }
            }

            return Task.FromResult(reply);
        }
    }
}
