using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Server;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Server;

/// <summary>The store's containers (SegmentStoreService.cs): slots, starts against ownership views, and what a stop leaves behind.</summary>
public sealed class SegmentStoreServiceTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Stopping_a_container_ends_its_supervisor_so_moves_back_and_forth_leave_nothing_behind()
    {
        using var data = new TempDirectory("streams-service");
        var logs = new Dictionary<int, InMemoryDurableDataLog>();
        await using var service = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = data.Path, ContainerCount = 1 },
            id => new InMemoryDurableDataLog(logs.TryGetValue(id, out var log) ? log.Records : null), NullLoggerFactory.Instance);
        await service.StartAsync(TestContext.Current.CancellationToken);

        for (var i = 0; i < 20; i++)
        {
            var supervisor = service.SupervisorOf(0);
            await service.StopAsync(0);
            await supervisor.WaitAsync(Bound, TestContext.Current.CancellationToken);
            Assert.True(await service.StartOwnedAsync(0, service.CurrentView, TestContext.Current.CancellationToken));
        }

        Assert.True(service.IsServing(0));
    }

    [Fact]
    public async Task A_start_against_a_view_older_than_the_last_stop_is_refused()
    {
        using var data = new TempDirectory("streams-service");
        await using var service = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = data.Path, ContainerCount = 1 },
            _ => new InMemoryDurableDataLog(), NullLoggerFactory.Instance);
        await service.StartAsync(TestContext.Current.CancellationToken);
        var before = service.CurrentView;

        await service.StopAsync(0);

        Assert.False(await service.StartOwnedAsync(0, before, TestContext.Current.CancellationToken));
        Assert.False(service.IsRunning(0));
        Assert.True(await service.StartOwnedAsync(0, service.CurrentView, TestContext.Current.CancellationToken));
        Assert.True(service.IsServing(0));
    }

    [Fact]
    public async Task A_data_directory_with_the_placement_by_epoch_layout_is_refused_with_what_to_do()
    {
        using var data = new TempDirectory("streams-service");
        await using (var fresh = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = data.Path, ContainerCount = 1 }, _ => new InMemoryDurableDataLog(), NullLoggerFactory.Instance))
        {
            await fresh.StartAsync(TestContext.Current.CancellationToken);
        }

        var layout = Path.Combine(data.Path, "layout.json");
        Assert.Contains("\"format\":3", File.ReadAllText(layout));

        File.WriteAllText(layout, "{\"format\":2,\"containerCount\":1}");
        await using var old = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = data.Path, ContainerCount = 1 }, _ => new InMemoryDurableDataLog(), NullLoggerFactory.Instance);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => old.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("layout 2", error.Message);
        Assert.Contains("Start with an empty data directory", error.Message);
    }

    [Fact]
    public async Task A_session_loss_stops_a_container_whose_log_never_answers_and_the_container_starts_again()
    {
        using var data = new TempDirectory("streams-service");
        var silent = new SilentDurableDataLog();
        var opened = 0;
        await using var service = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = data.Path, ContainerCount = 1 },
            _ => Interlocked.Increment(ref opened) == 1 ? silent : new InMemoryDurableDataLog(silent.Inner.Records), NullLoggerFactory.Instance);
        await service.StartAsync(TestContext.Current.CancellationToken);
        var first = service.RunningContainers.Single();
        Assert.Equal(OutcomeStatus.Success, (await first.CreateSegmentAsync(ContainerTesting.Segment, TestContext.Current.CancellationToken)).Status);
        silent.Silence();
        var append = first.AppendAsync(ContainerTesting.Segment, ContainerTesting.WriterA, 1, 1, null, ContainerTesting.Events("never durable"), TestContext.Current.CancellationToken);

        // Bounded by the container's stop timeout (10 s by default), not by the log.
        await service.StopAllAsync().WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.False(service.IsRunning(0));
        Assert.Equal(OutcomeStatus.ContainerUnavailable, (await append.WaitAsync(Bound, TestContext.Current.CancellationToken)).Status);
        Assert.True(await service.StartOwnedAsync(0, service.CurrentView, TestContext.Current.CancellationToken));
        Assert.True(service.IsServing(0));
        Assert.NotNull(service.RunningContainers.Single().GetInfo(ContainerTesting.Segment));
    }

    [Fact]
    public async Task A_setup_or_read_for_a_container_still_recovering_is_answered_when_it_serves_not_sent_away_to_retry()
    {
        using var data = new TempDirectory("streams-service");
        var records = new InMemoryDurableDataLog();
        await using (var first = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = data.Path, ContainerCount = 1 }, _ => records, NullLoggerFactory.Instance))
        {
            await first.StartAsync(TestContext.Current.CancellationToken);
            Assert.Equal(OutcomeStatus.Success, (await first.RunningContainers.Single().CreateSegmentAsync(ContainerTesting.Segment, TestContext.Current.CancellationToken)).Status);
        }

        // The next owner recovers behind a gate: a setup and a read that arrive meanwhile wait, and are answered once it serves.
        var gated = new GatedDurableDataLog(new InMemoryDurableDataLog(records.Records));
        await using var service = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = data.Path, ContainerCount = 1 }, _ => gated, NullLoggerFactory.Instance);
        var starting = service.StartAsync(TestContext.Current.CancellationToken);
        await gated.Opened.WaitAsync(Bound, TestContext.Current.CancellationToken);
        var replies = new System.Collections.Concurrent.ConcurrentQueue<AppendReply>();
        using var session = new AppendSession(service, replies.Enqueue);
        session.OnSetup(new SetupAppend { RequestId = 1, WriterId = ByteString.CopyFrom(ContainerTesting.WriterA.ToByteArray()), Segment = ContainerTesting.Segment });
        var read = new SegmentRequests(service).ReadAsync(new ReadSegmentRequest { Segment = ContainerTesting.Segment, MaxBytes = 100 }, TestContext.Current.CancellationToken).AsTask();
        await Task.Delay(200, TestContext.Current.CancellationToken);
        Assert.Empty(replies);
        Assert.Equal(1, session.Outstanding);
        Assert.False(read.IsCompleted);

        gated.Gate.SetResult();
        await starting.WaitAsync(Bound, TestContext.Current.CancellationToken);
        using (var empty = await read.WaitAsync(Bound, TestContext.Current.CancellationToken))
        {
            Assert.Equal(0, empty.Data.Length);
        }

        await session.DrainAsync(TestContext.Current.CancellationToken).WaitAsync(Bound, TestContext.Current.CancellationToken);
        var reply = Assert.Single(replies);
        Assert.Equal(AppendReply.KindOneofCase.Setup, reply.KindCase);
        Assert.Equal(-1, reply.Setup.LastEventNumber);

        // A store that no longer runs the container sends a setup away to retry, at once.
        await service.StopAsync(0);
        session.OnSetup(new SetupAppend { RequestId = 2, WriterId = ByteString.CopyFrom(ContainerTesting.WriterA.ToByteArray()), Segment = ContainerTesting.Segment });
        await session.DrainAsync(TestContext.Current.CancellationToken).WaitAsync(Bound, TestContext.Current.CancellationToken);
        Assert.Equal(AppendError.Retry, replies.Last().Rejected.Error);
    }
}
