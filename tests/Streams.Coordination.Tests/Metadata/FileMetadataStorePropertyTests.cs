using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.Common.Server.Tests.Metadata;

/// <summary>
/// Concurrent read-modify-write through compare-and-set: whatever the interleaving, no update is lost, versions
/// count the updates one by one, and the journal gives back the same state.
/// </summary>
public sealed class FileMetadataStorePropertyTests : IDisposable
{
    // Enough cases to meet the interleavings that matter, few enough to stay within seconds.
    private const int Cases = 100;

    private readonly TempDirectory _dir = new("metadata-property");

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Writers, each with a plan: for every increment, the index of the path it appends its next token to. A writer
    /// reuses the value and version its last successful set left (as a caller that trusts the returned version does)
    /// and reads afresh only after a conflict.
    /// </summary>
    public sealed record Scenario(string[] Paths, int[][] Plans)
    {
        public override string ToString() =>
            $"{Plans.Length} writers on [{string.Join(", ", Paths)}], plans {string.Join(" ", Plans.Select(p => $"[{string.Join(",", p)}]"))}";
    }

    [Fact]
    public void Concurrent_compare_and_set_loses_no_update_and_replays_the_same() =>
        Prop.ForAll(Arb.From(ScenarioGen(), Shrink), RunAsync).Check(Config.QuickThrowOnFailure.WithMaxTest(Cases));

    private static Gen<Scenario> ScenarioGen()
    {
        var segment =
            from length in Gen.Choose(1, 6)
            from chars in Gen.Elements("abcxyz019-_.".ToCharArray()).ArrayOf(length)
            select new string(chars);
        var path =
            from depth in Gen.Choose(1, 3)
            from segments in segment.ArrayOf(depth)
            select "/" + string.Join('/', segments);
        return
            from paths in Gen.Choose(1, 3).SelectMany(n => path.ArrayOf(n)).Select(p => p.Distinct().ToArray())
            from writers in Gen.Choose(2, 10)
            from plans in Gen.Choose(1, 6).SelectMany(n => Gen.Choose(0, paths.Length - 1).ArrayOf(n)).ArrayOf(writers)
            select new Scenario(paths, plans);
    }

    private static IEnumerable<Scenario> Shrink(Scenario scenario)
    {
        if (scenario.Plans.Length > 2)
        {
            for (var i = 0; i < scenario.Plans.Length; i++)
            {
                yield return scenario with { Plans = [.. scenario.Plans.Where((_, j) => j != i)] };
            }
        }

        for (var i = 0; i < scenario.Plans.Length; i++)
        {
            if (scenario.Plans[i].Length > 1)
            {
                var plans = scenario.Plans.ToArray();
                plans[i] = plans[i][..^1];
                yield return scenario with { Plans = plans };
            }
        }
    }

    private async Task RunAsync(Scenario scenario)
    {
        var directory = _dir.Sub(Guid.NewGuid().ToString("N"));
        var store = FileMetadataStore.Open(directory);
        List<(int Path, string Token, long Version)>[] successes;
        try
        {
            foreach (var path in scenario.Paths)
            {
                Assert.True(await store.TryCreateAsync(path, ReadOnlyMemory<byte>.Empty));
            }

            // Each increment can conflict only with another writer's success, so this bounds the retries.
            var maxAttempts = 1 + scenario.Plans.Sum(p => p.Length);
            // The writers start together, so that they contend from their first set.
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var writers = scenario.Plans.Select((plan, writer) => Task.Run(async () =>
            {
                await start.Task;
                return await WriteAsync(store, scenario.Paths, writer, plan, maxAttempts);
            })).ToList();
            start.SetResult();
            successes = await Task.WhenAll(writers);

            for (var p = 0; p < scenario.Paths.Length; p++)
            {
                var value = (await store.GetAsync(scenario.Paths[p]))!.Value;
                var tokens = Encoding.UTF8.GetString(value.Data).Split(';', StringSplitOptions.RemoveEmptyEntries);
                var written = successes.SelectMany(s => s).Where(s => s.Path == p).ToList();

                // No lost update: every successful set's token, each exactly once.
                var lost = written.Select(s => s.Token).Except(tokens).ToList();
                var repeated = tokens.GroupBy(t => t).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
                Assert.True(
                    lost.Count == 0 && repeated.Count == 0 && tokens.Length == written.Count,
                    $"{scenario.Paths[p]} at version {value.Version} holds {string.Join(';', tokens)}: lost [{string.Join(',', lost)}], repeated [{string.Join(',', repeated)}], " +
                    $"sets told {string.Join(' ', written.OrderBy(s => s.Version).Select(s => $"{s.Token}@{s.Version}"))}.");

                // Versions count the sets: the set told version v appended the v-th token.
                Assert.Equal(written.Count, value.Version);
                foreach (var (_, token, version) in written)
                {
                    Assert.True(tokens[version - 1] == token, $"{scenario.Paths[p]}: the set told version {version} wrote {token}, but the value holds {tokens[version - 1]} there.");
                }
            }

            // Each writer's versions on a path strictly increase.
            foreach (var writer in successes)
            {
                foreach (var onPath in writer.GroupBy(s => s.Path))
                {
                    var versions = onPath.Select(s => s.Version).ToList();
                    Assert.True(versions.Zip(versions.Skip(1)).All(v => v.First < v.Second), $"A writer was told versions {string.Join(",", versions)} on {scenario.Paths[onPath.Key]}.");
                }
            }
        }
        finally
        {
            await store.DisposeAsync();
        }

        var before = new Dictionary<string, VersionedValue>();
        await using (var reopened = FileMetadataStore.Open(directory))
        {
            foreach (var path in scenario.Paths)
            {
                before[path] = (await reopened.GetAsync(path))!.Value;
            }
        }

        // What the journal replays is what the writers were told.
        for (var p = 0; p < scenario.Paths.Length; p++)
        {
            var written = successes.SelectMany(s => s).Where(s => s.Path == p).OrderBy(s => s.Version).Select(s => s.Token + ";");
            var replayed = before[scenario.Paths[p]];
            Assert.Equal((string.Concat(written), (long)written.Count()), (Encoding.UTF8.GetString(replayed.Data), replayed.Version));
        }
    }

    private static async Task<List<(int Path, string Token, long Version)>> WriteAsync(
        FileMetadataStore store, string[] paths, int writer, int[] plan, int maxAttempts)
    {
        var successes = new List<(int, string, long)>();
        var known = new Dictionary<int, VersionedValue>();
        for (var i = 0; i < plan.Length; i++)
        {
            var p = plan[i];
            var token = $"w{writer}.{i}";
            var done = false;
            for (var attempt = 0; attempt < maxAttempts && !done; attempt++)
            {
                if (!known.TryGetValue(p, out var seen))
                {
                    seen = (await store.GetAsync(paths[p]))!.Value;
                }

                var next = seen.Data.Concat(Encoding.UTF8.GetBytes(token + ";")).ToArray();
                if (await store.TrySetAsync(paths[p], next, seen.Version) is { } version)
                {
                    known[p] = new VersionedValue(next, version);
                    successes.Add((p, token, version));
                    done = true;
                }
                else
                {
                    known.Remove(p);
                }
            }

            Assert.True(done, $"Writer {writer} gave up on increment {i} after {maxAttempts} conflicts.");
        }

        return successes;
    }
}
