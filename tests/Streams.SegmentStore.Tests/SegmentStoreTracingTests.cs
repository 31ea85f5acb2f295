using System.Diagnostics;

namespace Streams.SegmentStore.Tests;

public sealed class SegmentStoreTracingTests
{
    [Fact]
    public void Without_a_listener_no_session_span_is_started()
    {
        Assert.False(SegmentStoreTracing.Source.HasListeners());
        Assert.Null(SegmentStoreTracing.StartSession("AppendSession"));
    }

    [Fact]
    public void A_session_span_does_not_stay_current()
    {
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == SegmentStoreTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        using var parent = SegmentStoreTracing.Source.StartActivity("Call");

        using var session = SegmentStoreTracing.StartSession("AppendSession");
        Assert.NotNull(session);
        Assert.Equal(parent!.SpanId, session.ParentSpanId);
        Assert.Same(parent, Activity.Current);
    }
}
