// The shared metric code: confusion matrix, recall, normal-vs-abnormal rates,
// latency percentiles and folder labels, checked against hand-computed values.
#include <gtest/gtest.h>
#include <cmath>

#include "busi/error.hpp"
#include "busi/metrics.hpp"

namespace {

const std::vector<std::string> classes = {"normal", "benign", "malignant"};

// true \ pred: normal benign malignant
//   normal        8      1      1
//   benign        2     15      3
//   malignant     0      4      6
busi::ConfusionMatrix example() {
  busi::ConfusionMatrix m(classes);
  const int counts[3][3] = {{8, 1, 1}, {2, 15, 3}, {0, 4, 6}};
  for (int t = 0; t < 3; ++t)
    for (int p = 0; p < 3; ++p)
      for (int k = 0; k < counts[t][p]; ++k) m.add(t, p);
  return m;
}

TEST(Metrics, ConfusionCountsAndRates) {
  const auto m = example();
  EXPECT_EQ(m.total(), 40u);
  EXPECT_EQ(m.correct(), 29u);
  EXPECT_EQ(m.count(1, 2), 3u);
  EXPECT_EQ(m.class_total(2), 10u);
  EXPECT_DOUBLE_EQ(m.accuracy(), 29.0 / 40.0);
  EXPECT_DOUBLE_EQ(m.recall(0), 0.8);
  EXPECT_DOUBLE_EQ(m.recall(1), 0.75);
  EXPECT_DOUBLE_EQ(m.recall(2), 0.6);
  EXPECT_DOUBLE_EQ(m.precision(1), 15.0 / 20.0);
  EXPECT_EQ(m.recalls().size(), 3u);
}

TEST(Metrics, AbnormalMeansAnyAbnormalPrediction) {
  const auto rates = example().normal_vs_abnormal();
  // Abnormal images: 20 benign + 10 malignant; 2 of them predicted normal.
  EXPECT_EQ(rates.true_positive, 28u);
  EXPECT_EQ(rates.false_negative, 2u);
  EXPECT_EQ(rates.true_negative, 8u);
  EXPECT_EQ(rates.false_positive, 2u);
  EXPECT_DOUBLE_EQ(rates.sensitivity(), 28.0 / 30.0);
  EXPECT_DOUBLE_EQ(rates.specificity(), 0.8);
  EXPECT_THROW(example().normal_vs_abnormal("healthy"), busi::error);
}

TEST(Metrics, EmptyDenominatorsAreNan) {
  busi::ConfusionMatrix m(classes);
  EXPECT_TRUE(std::isnan(m.accuracy()));
  m.add(1, 1);
  EXPECT_DOUBLE_EQ(m.accuracy(), 1.0);
  EXPECT_TRUE(std::isnan(m.recall(0)));
  EXPECT_TRUE(std::isnan(m.normal_vs_abnormal().specificity()));
  EXPECT_DOUBLE_EQ(m.normal_vs_abnormal().sensitivity(), 1.0);
  EXPECT_NE(m.to_text().find("n/a"), std::string::npos);
}

TEST(Metrics, OutOfRangeClassesAreErrors) {
  busi::ConfusionMatrix m(classes);
  EXPECT_THROW(m.add(3, 0), busi::error);
  EXPECT_THROW(m.add(0, -1), busi::error);
  EXPECT_THROW(busi::ConfusionMatrix({}), busi::error);
}

TEST(Metrics, TextTableShowsCountsAndRecall) {
  const std::string text = example().to_text();
  EXPECT_NE(text.find("malignant"), std::string::npos);
  EXPECT_NE(text.find("75.0%"), std::string::npos);
  EXPECT_NE(text.find("15"), std::string::npos);
}

TEST(Metrics, PercentilesInterpolateLinearly) {
  EXPECT_DOUBLE_EQ(busi::percentile({2, 1}, 50), 1.5);
  std::vector<double> ramp;
  for (int i = 1; i <= 101; ++i) ramp.push_back(i);
  EXPECT_DOUBLE_EQ(busi::percentile(ramp, 90), 91.0);
  EXPECT_DOUBLE_EQ(busi::percentile(ramp, 0), 1.0);
  EXPECT_DOUBLE_EQ(busi::percentile(ramp, 100), 101.0);
  EXPECT_DOUBLE_EQ(busi::percentile({5}, 99), 5.0);
  EXPECT_THROW(busi::percentile({}, 50), busi::error);
  EXPECT_THROW(busi::percentile({1}, 101), busi::error);

  const auto s = busi::summarize_latencies({4, 1, 3, 2});
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.mean_ms, 2.5);
  EXPECT_DOUBLE_EQ(s.min_ms, 1);
  EXPECT_DOUBLE_EQ(s.max_ms, 4);
  EXPECT_DOUBLE_EQ(s.p50_ms, 2.5);
  EXPECT_DOUBLE_EQ(s.p90_ms, 3.7);
  EXPECT_THROW(busi::summarize_latencies({}), busi::error);
}

TEST(Metrics, LabelsComeFromTheNearestClassFolder) {
  EXPECT_EQ(busi::label_from_path("/data/busi/benign/benign (3).png", classes), 1);
  EXPECT_EQ(busi::label_from_path("malignant/x/y.png", classes), 2);
  EXPECT_EQ(busi::label_from_path("/normal/benign/z.png", classes), 1);
  EXPECT_EQ(busi::label_from_path("/data/other/normal.png", classes), -1);
  EXPECT_EQ(busi::label_from_path("lonely.png", classes), -1);
}

}  // namespace

namespace busi {
namespace {

// Wilson's interval: the textbook values (e.g. Newcombe 1998, Table I: 0/10,
// 5/10, 10/10) and never outside [0, 1].
TEST(Metrics, WilsonIntervalMatchesPublishedValues) {
  const auto near = [](Interval got, double low, double high) {
    EXPECT_NEAR(got.low, low, 5e-5);
    EXPECT_NEAR(got.high, high, 5e-5);
  };
  near(wilson_interval(0, 10), 0.0, 0.2775);
  near(wilson_interval(5, 10), 0.2366, 0.7634);
  near(wilson_interval(10, 10), 0.7225, 1.0);
  near(wilson_interval(81, 263), 0.2553, 0.3662);  // Newcombe's 81/263
  EXPECT_TRUE(std::isnan(wilson_interval(0, 0).low));
  EXPECT_THROW(wilson_interval(3, 2), error);
}

TEST(Metrics, RocCurveAndAucCountTiesAsHalf) {
  const RocCurve roc = roc_curve({0.9, 0.8, 0.7, 0.6}, {true, false, true, false});
  EXPECT_EQ(roc.false_positive_rate, (std::vector<double>{0, 0, 0.5, 0.5, 1}));
  EXPECT_EQ(roc.true_positive_rate, (std::vector<double>{0, 0.5, 0.5, 1, 1}));
  EXPECT_DOUBLE_EQ(roc.auc, 0.75);
  EXPECT_LT(roc.auc_interval.low, 0.75);
  EXPECT_GT(roc.auc_interval.high, 0.75);
  // Tied scores: one point for the tie, half credit (Mann-Whitney).
  EXPECT_DOUBLE_EQ(roc_curve({0.5, 0.5, 0.1}, {true, false, false}).auc, 0.75);
  // The AUC equals the share of (positive, negative) pairs ranked right, on random data.
  std::vector<double> scores;
  std::vector<bool> positive;
  for (int i = 0; i < 200; ++i) {
    scores.push_back(double((i * 7919) % 101) / 100);
    positive.push_back((i * 31) % 3 == 0);
  }
  double pairs = 0, right = 0;
  for (std::size_t a = 0; a < scores.size(); ++a)
    for (std::size_t b = 0; b < scores.size(); ++b)
      if (positive[a] && !positive[b]) {
        ++pairs;
        right += scores[a] > scores[b] ? 1 : scores[a] == scores[b] ? 0.5 : 0;
      }
  EXPECT_NEAR(roc_curve(scores, positive).auc, right / pairs, 1e-12);
  EXPECT_TRUE(std::isnan(roc_curve({0.1, 0.2}, {true, true}).auc));
  EXPECT_THROW(roc_curve({0.1}, {true, false}), error);
}

}  // namespace
}  // namespace busi
