using System.Text.RegularExpressions;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Metadata;
using Streams.Contracts.Controller;
using Streams.Contracts.ExternalScaler;
using Streams.Controller.ReaderGroups;
using Streams.Controller.Scaling;
using Streams.Controller.Streams;
using Streams.Controller.Tests.Streams;
using Streams.Testing;

namespace Streams.Controller.Tests.Scaling;

public sealed partial class ExternalScalerServiceTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("scaler");
    private readonly RecordingSegmentStore _segments = new();
    private FileMetadataStore _metadata = null!;
    private ControllerService _controller = null!;
    private ReaderGroupService _groups = null!;
    private ExternalScalerService _scaler = null!;

    public async ValueTask InitializeAsync()
    {
        _metadata = FileMetadataStore.Open(_dir.Path);
        _controller = new ControllerService(new StreamMetadataStore(_metadata), _segments, new Locator(), new ControllerOptions(), NullLogger<ControllerService>.Instance);
        _groups = new ReaderGroupService(_metadata, _controller, () => true, NullLogger<ReaderGroupService>.Instance, new CoordinatorRules { JoinWindow = TimeSpan.Zero });
        _scaler = new ExternalScalerService(_controller, _groups);
        await _controller.CreateScopeAsync("shop", default);
        await _controller.CreateStreamAsync("shop", "orders", new StreamConfiguration { Scaling = new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = 3 } } }, default);
    }

    public async ValueTask DisposeAsync()
    {
        await _metadata.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task The_metric_is_the_active_segment_count_and_a_sealed_stream_has_none()
    {
        var trigger = Trigger(("scope", "shop"), ("stream", "orders"), ("segmentsPerReplica", "2.5"));
        var spec = Assert.Single((await _scaler.GetMetricSpec(trigger, new CallContext())).MetricSpecs);
        Assert.Equal(("streams-segments-shop-orders", 3L, 2.5), (spec.MetricName, spec.TargetSize, spec.TargetSizeFloat));
        Assert.Equal((3L, 3.0, true), await AskAsync(trigger));

        await _controller.SealStreamAsync("shop", "orders", default);
        Assert.Equal((0L, 0.0, false), await AskAsync(trigger));
        Assert.Equal(1.0, Assert.Single((await _scaler.GetMetricSpec(Trigger(("scope", "shop"), ("stream", "orders")), new CallContext())).MetricSpecs).TargetSizeFloat);
    }

    [Fact]
    public async Task The_signal_follows_a_new_epoch_at_once_and_StreamIsActive_pushes_a_change_within_a_second()
    {
        var trigger = Trigger(("scope", "shop"), ("stream", "orders"));
        var context = new CallContext();
        var sent = new Messages();
        var call = Task.Run(() => _scaler.StreamIsActive(trigger, sent, context));
        await sent.WaitForAsync(1);

        // A scale's new epoch, as the workflow records it: 3 segments became 5.
        var streams = new StreamMetadataStore(_metadata);
        var (record, version) = (await streams.GetStreamAsync("shop", "orders", default))!.Value;
        var epoch1 = ControllerService.EvenSegments(5).Select(s => s with { Number = s.Number + 3, Epoch = 1 }).ToList();
        Assert.NotNull(await streams.UpdateStreamAsync(record with { Epoch = 1, ActiveSegments = epoch1, EarlierSegments = record.ActiveSegments }, version, default));
        Assert.Equal((5L, 5.0, true), await AskAsync(trigger));

        var sealing = System.Diagnostics.Stopwatch.StartNew();
        await _controller.SealStreamAsync("shop", "orders", default);
        await sent.WaitForAsync(2);
        var pushed = sealing.Elapsed;
        TestContext.Current.TestOutputHelper?.WriteLine($"StreamIsActive pushed the seal {pushed.TotalMilliseconds:F1} ms after SealStream began");
        Assert.True(pushed < TimeSpan.FromSeconds(1), $"StreamIsActive pushed the seal after {pushed.TotalMilliseconds:F0} ms");
        Assert.Equal([true, false], sent.Received);

        context.Cancel();
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(10)); // ends when KEDA hangs up
        }
        catch (OperationCanceledException)
        {
        }
    }

    [Fact]
    public async Task The_unread_bytes_metric_is_the_groups_backlog_capped_at_its_backlogged_segments_times_the_target()
    {
        await _groups.CreateAsync(new CreateReaderGroupRequest
        {
            Scope = "shop", Group = "billing",
            Config = new ReaderGroupConfig { Streams = { new ReaderGroupStream { Scope = "shop", Stream = "orders" } } },
        }, default);
        var trigger = Trigger(("metric", "unreadBytes"), ("scope", "shop"), ("readerGroup", "billing"), ("targetBytesPerReplica", "1000"), ("activationUnreadBytes", "100"));
        var spec = Assert.Single((await _scaler.GetMetricSpec(trigger, new CallContext())).MetricSpecs);
        Assert.Equal(("streams-unread-shop-billing", 1000L, 1000.0), (spec.MetricName, spec.TargetSize, spec.TargetSizeFloat));
        Assert.Equal((0L, 0.0, false), await AskUnreadAsync(trigger));

        // One segment holds 5,000 unread bytes, another 50: 5,050 in all, but only two segments can keep readers busy.
        SetLength(0, 5000);
        SetLength(1, 50);
        var fresh = new ReaderGroupService(_metadata, _controller, () => true, NullLogger<ReaderGroupService>.Instance);
        var scaler = new ExternalScalerService(_controller, fresh);
        var value = Assert.Single((await scaler.GetMetrics(new GetMetricsRequest { ScaledObjectRef = trigger, MetricName = spec.MetricName }, new CallContext())).MetricValues);
        Assert.Equal((2000L, 2000.0), (value.MetricValue_, value.MetricValueFloat));
        Assert.True((await scaler.IsActive(trigger, new CallContext())).Result);

        // Below the activation threshold the group counts as caught up: inactive, so functions scale to zero.
        SetLength(0, 0);
        SetLength(1, 60);
        var caughtUp = new ExternalScalerService(_controller, new ReaderGroupService(_metadata, _controller, () => true, NullLogger<ReaderGroupService>.Instance));
        Assert.False((await caughtUp.IsActive(trigger, new CallContext())).Result);

        var missing = Trigger(("metric", "unreadBytes"), ("scope", "shop"), ("readerGroup", "nobody"));
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => _scaler.IsActive(missing, new CallContext()))).StatusCode);

        // A controller that does not lead answers too, from the stored record and the lengths it reads itself.
        SetLength(0, 5000);
        var follower = new ExternalScalerService(_controller, new ReaderGroupService(_metadata, _controller, () => false, NullLogger<ReaderGroupService>.Instance));
        var fromFollower = Assert.Single((await follower.GetMetrics(new GetMetricsRequest { ScaledObjectRef = trigger, MetricName = spec.MetricName }, new CallContext())).MetricValues);
        Assert.Equal(2000.0, fromFollower.MetricValueFloat);
        Assert.True((await follower.IsActive(trigger, new CallContext())).Result);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => follower.IsActive(missing, new CallContext()))).StatusCode);
    }

    [Theory]
    [InlineData("metric", "lag", "metric must be 'segments' or 'unreadBytes'")]
    [InlineData("targetBytesPerReplica", "0", "targetBytesPerReplica must be a whole number")]
    [InlineData("targetBytesPerReplica", "1.5", "targetBytesPerReplica must be a whole number")]
    [InlineData("activationUnreadBytes", "-1", "activationUnreadBytes must be a whole number")]
    [InlineData("readerGroup", null, "needs the 'scope' and the 'readerGroup'")]
    public async Task Every_call_refuses_bad_unread_bytes_metadata_alike(string key, string? value, string message)
    {
        var metadata = new Dictionary<string, string> { ["metric"] = "unreadBytes", ["scope"] = "shop", ["readerGroup"] = "billing" };
        if (value is null)
        {
            metadata.Remove(key);
        }
        else
        {
            metadata[key] = value;
        }

        await AssertEveryCallFailsAsync(Trigger([.. metadata.Select(p => (p.Key, p.Value))]), StatusCode.InvalidArgument, message);
    }

    private void SetLength(int number, long length)
    {
        var name = $"shop/orders/{number}.#epoch.0";
        _segments.Infos[name] = new Contracts.SegmentStore.SegmentInfo { Segment = name, Length = length };
    }

    private async Task<(long Value, double ValueFloat, bool Active)> AskUnreadAsync(ScaledObjectRef trigger)
    {
        var value = Assert.Single((await _scaler.GetMetrics(new GetMetricsRequest { ScaledObjectRef = trigger, MetricName = "streams-unread-shop-billing" }, new CallContext())).MetricValues);
        var active = (await _scaler.IsActive(trigger, new CallContext())).Result;
        Assert.Equal([active], await StreamIsActiveAsync(trigger));
        return (value.MetricValue_, value.MetricValueFloat, active);
    }

    [Theory]
    [InlineData("scope", "no spaces", "contains ' '")]
    [InlineData("scope", "", "name is empty")]
    [InlineData("stream", "-orders", "must start with a letter or a digit")]
    [InlineData("stream", null, "must name the 'scope' and the 'stream'")]
    [InlineData("segmentsPerReplica", "0", "segmentsPerReplica must be")]
    [InlineData("segmentsPerReplica", "-1", "segmentsPerReplica must be")]
    [InlineData("segmentsPerReplica", "two", "segmentsPerReplica must be")]
    [InlineData("segmentsPerReplica", "NaN", "segmentsPerReplica must be")]
    [InlineData("segmentsPerReplica", "Infinity", "segmentsPerReplica must be")]
    [InlineData("segmentsPerReplica", "1e9", "segmentsPerReplica must be")]
    public async Task Every_call_refuses_bad_metadata_alike(string key, string? value, string message)
    {
        var metadata = new Dictionary<string, string> { ["scope"] = "shop", ["stream"] = "orders" };
        if (value is null)
        {
            metadata.Remove(key);
        }
        else
        {
            metadata[key] = value;
        }

        await AssertEveryCallFailsAsync(Trigger([.. metadata.Select(p => (p.Key, p.Value))]), StatusCode.InvalidArgument, message);
    }

    [Fact]
    public async Task Every_call_answers_not_found_for_a_missing_stream() =>
        await AssertEveryCallFailsAsync(Trigger(("scope", "shop"), ("stream", "missing")), StatusCode.NotFound, "Stream shop/missing does not exist.");

    [Theory]
    [InlineData("shop", "orders", "streams-segments-shop-orders")]
    [InlineData("Shop_EU", "orders.v2", "streams-segments-shop-eu-orders-v2")]
    [InlineData("shop", "orders_", "streams-segments-shop-orders")]
    [InlineData("a.", "b--", "streams-segments-a--b")]
    public void Metric_names_are_lowercase_rfc1123_labels(string scope, string stream, string expected) =>
        Assert.Equal(expected, ExternalScalerService.MetricName(scope, stream));

    [Fact]
    public void Any_valid_names_give_a_valid_metric_name_and_long_ones_stay_apart()
    {
        const string Characters = "abcXYZ019-_.";
        var random = new Random(5);
        string Name() => "a" + new string([.. Enumerable.Range(0, random.Next(0, 255)).Select(_ => Characters[random.Next(Characters.Length)])]);
        for (var i = 0; i < 2000; i++)
        {
            var (scope, stream) = (Name(), Name());
            var name = ExternalScalerService.MetricName(scope, stream);
            Assert.True(Rfc1123Label().IsMatch(name), $"'{name}' (for {scope}/{stream}) is not an RFC 1123 label.");
        }

        var long1 = ExternalScalerService.MetricName("shop", new string('x', 100) + "1");
        var long2 = ExternalScalerService.MetricName("shop", new string('x', 100) + "2");
        Assert.Equal(63, long1.Length);
        Assert.NotEqual(long1, long2);
    }

    /// <summary>The metric value (as integer and float) and IsActive, as KEDA reads them; StreamIsActive must agree.</summary>
    private async Task<(long Value, double ValueFloat, bool Active)> AskAsync(ScaledObjectRef trigger)
    {
        var value = Assert.Single((await _scaler.GetMetrics(new GetMetricsRequest { ScaledObjectRef = trigger, MetricName = "streams-segments-shop-orders" }, new CallContext())).MetricValues);
        var active = (await _scaler.IsActive(trigger, new CallContext())).Result;
        Assert.Equal([active], await StreamIsActiveAsync(trigger));
        return (value.MetricValue_, value.MetricValueFloat, active);
    }

    /// <summary>What StreamIsActive sends first; the call is cancelled after its first message.</summary>
    private async Task<List<bool>> StreamIsActiveAsync(ScaledObjectRef trigger)
    {
        var context = new CallContext();
        var sent = new FirstMessage(context);
        try
        {
            await _scaler.StreamIsActive(trigger, sent, context);
        }
        catch (OperationCanceledException) when (sent.Messages.Count > 0)
        {
        }

        return sent.Messages;
    }

    private async Task AssertEveryCallFailsAsync(ScaledObjectRef trigger, StatusCode code, string message)
    {
        var calls = new Dictionary<string, Func<Task>>
        {
            ["IsActive"] = () => _scaler.IsActive(trigger, new CallContext()),
            ["StreamIsActive"] = () => StreamIsActiveAsync(trigger),
            ["GetMetricSpec"] = () => _scaler.GetMetricSpec(trigger, new CallContext()),
            ["GetMetrics"] = () => _scaler.GetMetrics(new GetMetricsRequest { ScaledObjectRef = trigger, MetricName = "streams-segments-shop-orders" }, new CallContext()),
        };
        foreach (var (name, call) in calls)
        {
            var error = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal((name, code), (name, error.StatusCode));
            Assert.Contains(message, error.Status.Detail, StringComparison.Ordinal);
        }
    }

    private static ScaledObjectRef Trigger(params (string Key, string Value)[] metadata)
    {
        var reference = new ScaledObjectRef { Name = "readers", Namespace = "default" };
        reference.ScalerMetadata.Add("scalerAddress", "streams-controller:9090"); // KEDA passes every key of the trigger
        foreach (var (key, value) in metadata)
        {
            reference.ScalerMetadata[key] = value;
        }

        return reference;
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex Rfc1123Label();

    /// <summary>Records the messages written and cancels the call after the first.</summary>
    private sealed class FirstMessage(CallContext context) : IServerStreamWriter<IsActiveResponse>
    {
        public List<bool> Messages { get; } = [];

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(IsActiveResponse message)
        {
            Messages.Add(message.Result);
            context.Cancel();
            return Task.CompletedTask;
        }

        public Task WriteAsync(IsActiveResponse message, CancellationToken cancellationToken) => WriteAsync(message);
    }

    /// <summary>Records every message written, for a test to wait on.</summary>
    private sealed class Messages : IServerStreamWriter<IsActiveResponse>
    {
        private readonly Lock _lock = new();
        private readonly List<bool> _received = [];
        private TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public WriteOptions? WriteOptions { get; set; }

        public List<bool> Received
        {
            get
            {
                lock (_lock)
                {
                    return [.. _received];
                }
            }
        }

        public Task WriteAsync(IsActiveResponse message)
        {
            lock (_lock)
            {
                _received.Add(message.Result);
                _written.TrySetResult();
                _written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            return Task.CompletedTask;
        }

        public Task WriteAsync(IsActiveResponse message, CancellationToken cancellationToken) => WriteAsync(message);

        /// <summary>Waits (at most 10 s) until <paramref name="count"/> messages were written.</summary>
        public async Task WaitForAsync(int count)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                Task written;
                lock (_lock)
                {
                    if (_received.Count >= count)
                    {
                        return;
                    }

                    written = _written.Task;
                }

                var left = deadline - DateTime.UtcNow;
                Assert.True(left > TimeSpan.Zero, $"only {Received.Count} of {count} messages arrived in 10 s");
                await Task.WhenAny(written, Task.Delay(left));
            }
        }
    }

    /// <summary>A server call context for calling a service method directly.</summary>
    private sealed class CallContext : ServerCallContext
    {
        private readonly CancellationTokenSource _cancellation = new();

        public void Cancel() => _cancellation.Cancel();

        protected override string MethodCore => "test";

        protected override string HostCore => "localhost";

        protected override string PeerCore => "test";

        protected override DateTime DeadlineCore => DateTime.MaxValue;

        protected override Metadata RequestHeadersCore { get; } = [];

        protected override CancellationToken CancellationTokenCore => _cancellation.Token;

        protected override Metadata ResponseTrailersCore { get; } = [];

        protected override Status StatusCore { get; set; }

        protected override WriteOptions? WriteOptionsCore { get; set; }

        protected override AuthContext AuthContextCore { get; } = new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
