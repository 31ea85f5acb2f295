using System.Globalization;
using System.Text;

namespace Streams.Testing;

/// <summary>
/// A real cluster for fault tests: a ZooKeeper server, bookies, controllers and segment stores, each its own
/// <c>streams</c> process on loopback. Members can be killed (SIGKILL), frozen (SIGSTOP) and started again on the same
/// ports and data. Sessions time out quickly so that work moves within seconds.
/// </summary>
public sealed class ClusterProcesses : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("cluster");
    private readonly List<StreamsProcess> _retired = [];

    private ClusterProcesses(ZooKeeperServer zooKeeper, int? sessionTimeoutMs, (int E, int Qw, int Qa) quorums, int containers)
    {
        ZooKeeper = zooKeeper;
        SessionTimeoutMs = sessionTimeoutMs;
        Quorums = quorums;
        Containers = containers;
    }

    public ZooKeeperServer ZooKeeper { get; }

    /// <summary>Every member's ZooKeeper session timeout, or null where each role keeps its own default.</summary>
    public int? SessionTimeoutMs { get; }

    public (int E, int Qw, int Qa) Quorums { get; }

    /// <summary>The cluster's container count.</summary>
    public int Containers { get; }

    /// <summary>Bookie processes by index; a killed one stays in its slot until restarted.</summary>
    public List<StreamsProcess> Bookies { get; } = [];

    /// <summary>Controller processes by index, the first started first; a killed one stays in its slot.</summary>
    public List<StreamsProcess> Controllers { get; } = [];

    /// <summary>The first controller.</summary>
    public StreamsProcess Controller => Controllers[0];

    public List<StreamsProcess> SegmentStores { get; } = [];

    /// <summary>Every controller's address, comma-separated, as a client takes them.</summary>
    public string ControllerUri => string.Join(',', Controllers.Select(c => c.ControllerUri));

    /// <summary>Extra environment for every member (configuration as STREAMS__Section__Key).</summary>
    public Dictionary<string, string> Environment { get; } = new()
    {
        // Small journal files keep the test's disk use low; GC runs often.
        ["STREAMS__Bookie__JournalSegmentSize"] = "16MiB",
        ["STREAMS__Bookie__GcInterval"] = "00:00:02",
        // Data moves to Tier 2 and logs are truncated within the test's load, so failovers recover from checkpoints and
        // read their predecessors' chunks.
        ["STREAMS__SegmentStore__Tier2FlushSize"] = "256KiB",
        ["STREAMS__SegmentStore__Tier2FlushAge"] = "00:00:00.500",
        ["STREAMS__SegmentStore__Tier2MaxChunkSize"] = "1MiB",
        ["STREAMS__SegmentStore__CheckpointEvery"] = "512KiB",
        ["STREAMS__SegmentStore__LedgerRolloverSize"] = "1MiB",
    };

    /// <summary>The Tier 2 every segment store shares: a directory of the cluster's.</summary>
    public string Tier2Directory => _dir.Sub("tier2");

    /// <summary>
    /// Starts ZooKeeper, <paramref name="bookies"/> bookies, <paramref name="controllers"/> controllers (one after the
    /// other, so the first leads) and <paramref name="stores"/> segment stores.
    /// </summary>
    /// <param name="bookies">Bookie processes.</param>
    /// <param name="stores">Segment store processes.</param>
    /// <param name="quorums">E, Qw and Qa of the segment stores' ledgers.</param>
    /// <param name="containers">The cluster's container count.</param>
    /// <param name="sessionTimeoutMs">
    /// Every member's ZooKeeper session timeout; null leaves each role its production default (what a fault test of
    /// the defaults measures).
    /// </param>
    /// <param name="environment">Settings for every member on top of <see cref="Environment"/>'s.</param>
    /// <param name="controllers">Controller processes.</param>
    public static async Task<ClusterProcesses> StartAsync(
        int bookies, int stores, (int E, int Qw, int Qa) quorums, int containers = 4, int? sessionTimeoutMs = 2000, Dictionary<string, string>? environment = null, int controllers = 1)
    {
        var zooKeeper = await ZooKeeperServer.StartAsync();
        var cluster = new ClusterProcesses(zooKeeper, sessionTimeoutMs, quorums, containers);
        foreach (var (key, value) in environment ?? [])
        {
            cluster.Environment[key] = value;
        }

        try
        {
            await Task.WhenAll(Enumerable.Range(0, bookies).Select(_ => cluster.AddBookieAsync()));
            // The first controller writes the cluster's configuration and leads; the others start meanwhile.
            await cluster.AddControllerAsync();
            var others = new StreamsProcess[Math.Max(0, controllers - 1)];
            var starting = Task.WhenAll(Enumerable.Range(0, others.Length).Select(async i => others[i] = await cluster.StartControllerProcessAsync()));
            for (var i = 0; i < stores; i++)
            {
                await cluster.AddSegmentStoreAsync();
            }

            try
            {
                await starting;
            }
            finally
            {
                cluster.Controllers.AddRange(others.Where(c => c is not null));
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts one more controller; it serves at once and leads when no other does.</summary>
    private async Task<StreamsProcess> AddControllerAsync()
    {
        var controller = await StartControllerProcessAsync();
        Controllers.Add(controller);
        return controller;
    }

    /// <summary>Starts controller <paramref name="index"/> again on its ports (clients keep its address).</summary>
    public async Task<StreamsProcess> RestartControllerAsync(int index)
    {
        var old = Controllers[index];
        old.Kill();
        _retired.Add(old);
        var controller = await StreamsProcess.StartServerAsync(
            ["controller", .. Common(), "--containers", Containers.ToString(CultureInfo.InvariantCulture)], old.GrpcPort, null, old.MetricsPort, Environment);
        Controllers[index] = controller;
        return controller;
    }

    /// <summary>
    /// The index of the controller whose /readyz says it leads, or null while none does (or more than one says so,
    /// for a moment after a handover).
    /// </summary>
    public async Task<int?> LeadingControllerAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        int? leader = null;
        for (var i = 0; i < Controllers.Count; i++)
        {
            if (Controllers[i].HasExited)
            {
                continue;
            }

            try
            {
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{Controllers[i].MetricsPort}/readyz"));
                if ((await response.Content.ReadAsStringAsync()).Contains("leading", StringComparison.Ordinal))
                {
                    if (leader is not null)
                    {
                        return null;
                    }

                    leader = i;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not answering: not leading as far as anyone can tell.
            }
        }

        return leader;
    }

    /// <summary>Starts one more bookie with its own data directory.</summary>
    public async Task<StreamsProcess> AddBookieAsync()
    {
        int index;
        lock (Bookies)
        {
            index = Bookies.Count;
            Bookies.Add(null!);
        }

        var bookie = await StreamsProcess.RetryOnPortClashAsync(() => StartBookieProcessAsync(index, Ports.Free(), Ports.Free(), Ports.Free()));
        lock (Bookies)
        {
            Bookies[index] = bookie;
        }

        return bookie;
    }

    /// <summary>The journal directory of bookie <paramref name="index"/>.</summary>
    public string BookieDirectory(int index) => _dir.Sub($"bookie-{index}");

    /// <summary>Kills bookie <paramref name="index"/> with SIGKILL.</summary>
    public void KillBookie(int index) => Bookies[index].Kill();

    /// <summary>Starts bookie <paramref name="index"/> again on its ports and journal.</summary>
    public async Task<StreamsProcess> RestartBookieAsync(int index)
    {
        var old = Bookies[index];
        old.Kill();
        _retired.Add(old);
        var bookie = await StartBookieProcessAsync(index, old.GrpcPort, old.DataPort, old.MetricsPort);
        Bookies[index] = bookie;
        return bookie;
    }

    /// <summary>
    /// Starts a segment store; it registers and the controller assigns it containers. <paramref name="zooKeeper"/>
    /// overrides the ZooKeeper address it uses (e.g. a <see cref="TcpProxy"/> in front of the server, to cut it off).
    /// </summary>
    public async Task<StreamsProcess> AddSegmentStoreAsync(string? zooKeeper = null)
    {
        var store = await StreamsProcess.RetryOnPortClashAsync(() => StartSegmentStoreProcessAsync(Ports.Free(), Ports.Free(), Ports.Free(), zooKeeper));
        SegmentStores.Add(store);
        return store;
    }

    /// <summary>Starts segment store <paramref name="index"/> again on the same ports (so the same store id).</summary>
    public async Task<StreamsProcess> RestartSegmentStoreAsync(int index)
    {
        var old = SegmentStores[index];
        old.Kill();
        _retired.Add(old);
        var store = await StartSegmentStoreProcessAsync(old.GrpcPort, old.DataPort, old.MetricsPort);
        SegmentStores[index] = store;
        return store;
    }

    /// <summary>
    /// Waits until the live segment stores together run <paramref name="containers"/> containers and each runs all it
    /// is assigned (their /readyz says so); with <paramref name="among"/>, only those stores count. Fails with every
    /// member's output if that does not happen in time.
    /// </summary>
    public async Task WaitForContainersAsync(int containers, TimeSpan timeout, IReadOnlyList<StreamsProcess>? among = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        var last = string.Empty;
        while (DateTime.UtcNow < deadline)
        {
            var running = 0;
            var healthy = true;
            var details = new List<string>();
            foreach (var store in (among ?? SegmentStores).Where(s => !s.HasExited))
            {
                try
                {
                    using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{store.MetricsPort}/readyz"));
                    var detail = (await response.Content.ReadAsStringAsync()).Trim();
                    details.Add(detail);
                    healthy &= response.IsSuccessStatusCode;
                    // The containers check's line ends "running N".
                    var line = detail.Split('\n').FirstOrDefault(l => l.StartsWith("containers:", StringComparison.Ordinal)) ?? string.Empty;
                    var at = line.LastIndexOf("running ", StringComparison.Ordinal);
                    running += at >= 0 ? int.Parse(line[(at + 8)..], CultureInfo.InvariantCulture) : 0;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    healthy = false;
                    details.Add($"{store.GrpcPort}: {e.Message}");
                }
            }

            last = string.Join(" | ", details);
            if (healthy && running == containers)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"The segment stores did not run {containers} containers within {timeout}: {last}\n{Output()}");
    }

    /// <summary>The segment store running the most containers (the first of equals) and how many each runs, in store order.</summary>
    public async Task<(int Index, int[] Running)> BusiestSegmentStoreAsync()
    {
        var running = new int[SegmentStores.Count];
        for (var i = 0; i < running.Length; i++)
        {
            running[i] = await RunningContainersAsync(SegmentStores[i]) ?? 0;
        }

        return (Array.IndexOf(running, running.Max()), running);
    }

    /// <summary>How many containers <paramref name="store"/>'s /readyz says it runs; null if it does not answer.</summary>
    public static async Task<int?> RunningContainersAsync(StreamsProcess store)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            var detail = await http.GetStringAsync(new Uri($"http://127.0.0.1:{store.MetricsPort}/readyz"));
            var line = detail.Split('\n').FirstOrDefault(l => l.StartsWith("containers:", StringComparison.Ordinal)) ?? string.Empty;
            var at = line.LastIndexOf("running ", StringComparison.Ordinal);
            return at >= 0 ? int.Parse(line[(at + 8)..].Trim(), CultureInfo.InvariantCulture) : 0;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>Waits until <paramref name="store"/> runs exactly <paramref name="containers"/> containers; fails with every member's output if it does not in time.</summary>
    public async Task WaitForRunningAsync(StreamsProcess store, int containers, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        int? running = null;
        while (DateTime.UtcNow < deadline)
        {
            running = await RunningContainersAsync(store);
            if (running == containers)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"Segment store {store.GrpcPort} ran {running?.ToString(CultureInfo.InvariantCulture) ?? "no answer"} containers, not {containers}, within {timeout}.\n{Output()}");
    }

    /// <summary>Every member's output so far, for a failing test's message.</summary>
    public string Output()
    {
        var text = new StringBuilder();
        void Add(string name, StreamsProcess? process)
        {
            if (process is not null)
            {
                text.AppendLine($"===== {name} (pid {process.Pid}{(process.HasExited ? ", exited" : string.Empty)})").AppendLine(process.Output);
            }
        }

        for (var i = 0; i < _retired.Count; i++)
        {
            Add($"retired process {i}", _retired[i]);
        }

        for (var i = 0; i < Bookies.Count; i++)
        {
            Add($"bookie-{i}", Bookies[i]);
        }

        for (var i = 0; i < Controllers.Count; i++)
        {
            Add($"controller-{i}", Controllers[i]);
        }

        for (var i = 0; i < SegmentStores.Count; i++)
        {
            Add($"segmentstore-{i}", SegmentStores[i]);
        }

        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        var all = SegmentStores.Concat(Controllers).Concat(Bookies).Concat(_retired).Where(p => p is not null);
        foreach (var process in all)
        {
            await process.DisposeAsync();
        }

        await ZooKeeper.DisposeAsync();
        _dir.Dispose();
    }

    private string[] Common(string? zooKeeper = null) => SessionTimeoutMs is { } timeout
        ? ["--zookeeper", zooKeeper ?? ZooKeeper.ConnectionString, "--session-timeout-ms", timeout.ToString(CultureInfo.InvariantCulture)]
        : ["--zookeeper", zooKeeper ?? ZooKeeper.ConnectionString];

    private Task<StreamsProcess> StartControllerProcessAsync() =>
        StreamsProcess.StartOnFreePortsAsync(["controller", .. Common(), "--containers", Containers.ToString(CultureInfo.InvariantCulture)], Environment, dataPort: false);

    private Task<StreamsProcess> StartBookieProcessAsync(int index, int grpc, int data, int metrics) =>
        StreamsProcess.StartServerAsync(["bookie", .. Common(), "--data-dir", BookieDirectory(index)], grpc, data, metrics, Environment);

    private Task<StreamsProcess> StartSegmentStoreProcessAsync(int grpc, int data, int metrics, string? zooKeeper = null) =>
        StreamsProcess.StartServerAsync(
            ["segmentstore", .. Common(zooKeeper), "--ensemble", Quorum(Quorums.E), "--write-quorum", Quorum(Quorums.Qw), "--ack-quorum", Quorum(Quorums.Qa), "--tier2", "file://" + Tier2Directory],
            grpc, data, metrics, Environment);

    private static string Quorum(int value) => value.ToString(CultureInfo.InvariantCulture);
}
