"""Which template functions the local stack runs on a schedule, and how often."""

from __future__ import annotations

import pytest
from flowlink.local.cfn_template import Stack, load_template
from flowlink.local.provision import find_template
from flowlink.local.scheduled import ScheduleError, rate_seconds, scheduled_event, scheduled_functions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("expression, seconds", [
    ("rate(5 minutes)", 300), ("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("rate( 1 day )", 86400),
])
def test_rate_expressions(expression, seconds):
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0 12 * * ? *)", "rate(0 minutes)", "rate(5 weeks)", "every 5 minutes", ""])
def test_other_expressions_are_refused(expression):
    with pytest.raises(ScheduleError):
        rate_seconds(expression)


def test_the_template_schedules_the_witness_publisher_every_five_minutes():
    stack = Stack(load_template(find_template()), stack_name="flowlink-local")
    assert scheduled_functions(stack) == {"WitnessPublisherFunction": 300.0}


def test_disabled_cron_and_shorter_schedules():
    template = {"Resources": {
        "Job": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {
            "Slow": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)"}},
            "Fast": {"Type": "Schedule", "Properties": {"Schedule": "rate(10 minutes)"}},
            "Cron": {"Type": "Schedule", "Properties": {"Schedule": "cron(0 12 * * ? *)"}},
        }}},
        "Off": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {
            "Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)", "Enabled": False}},
        }}},
        "Api": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"Get": {"Type": "HttpApi"}}}},
    }}
    assert scheduled_functions(Stack(template, stack_name="s")) == {"Job": 600.0}


def test_scheduled_event_looks_like_eventbridge():
    event = scheduled_event("WitnessPublisherFunction", "eu-west-1")
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:eu-west-1:000000000000:rule/WitnessPublisherFunction"]
