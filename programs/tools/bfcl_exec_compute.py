"""BFCL exec functions that compute (math, statistics, geometry, regression, physics,
health, money), implemented for real as offline tools. The web-API ones live in
`bfcl_exec_offline.py`. All run in the sandbox (untrusted), like any user tool.
"""

from __future__ import annotations

import math

from workbench.tools.functions import tool


# -- arithmetic and statistics --------------------------------------------------------------
@tool("add_binary_numbers")
def add_binary_numbers(a: str, b: str) -> str:
    """Adds two binary numbers."""
    return bin(int(a, 2) + int(b, 2))[2:]


@tool("calc_binomial_probability")
def calc_binomial_probability(n: int, k: int, p: float) -> float:
    """Calculates the probability of getting k successes in n trials."""
    return math.comb(n, k) * p ** k * (1 - p) ** (n - k)


@tool("calculate_cosine_similarity")
def calculate_cosine_similarity(vectorA: list[float], vectorB: list[float]) -> float:
    """Calculates the cosine similarity of two vectors."""
    dot = sum(a * b for a, b in zip(vectorA, vectorB))
    return dot / (math.sqrt(sum(a * a for a in vectorA)) * math.sqrt(sum(b * b for b in vectorB)))


@tool("calculate_mean")
def calculate_mean(numbers: list[float]) -> float:
    """Calculates the mean of a list of numbers."""
    return sum(numbers) / len(numbers)


@tool("calculate_standard_deviation")
def calculate_standard_deviation(numbers: list[float]) -> float:
    """Calculates the standard deviation of a list of numbers."""
    mean = sum(numbers) / len(numbers)
    return math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))


@tool("calculate_permutations")
def calculate_permutations(n: int, k: int) -> int:
    """Calculates the number of permutations of k elements from a set of n elements."""
    return math.perm(n, k)


@tool("math_factorial")
def math_factorial(n: int) -> int:
    """Calculates the factorial of a number."""
    return math.factorial(n)


@tool("math_gcd")
def math_gcd(a: int, b: int) -> int:
    """Calculates the greatest common divisor of two numbers."""
    return math.gcd(a, b)


@tool("math_lcm")
def math_lcm(a: int, b: int) -> int:
    """Calculates the least common multiple of two numbers."""
    return math.lcm(a, b)


@tool("get_fibonacci_sequence")
def get_fibonacci_sequence(n: int) -> list[int]:
    """Calculates the n numbers of the Fibonacci."""
    seq = [0, 1]
    while len(seq) < n:
        seq.append(seq[-1] + seq[-2])
    return seq[:n]


@tool("get_prime_factors")
def get_prime_factors(number: int) -> list[int]:
    """Calculates the prime factors of a number."""
    factors, d = [], 2
    while d * d <= number:
        while number % d == 0:
            factors.append(d)
            number //= d
        d += 1
    return factors + ([number] if number > 1 else [])


@tool("sort_array")
def sort_array(array: list[int], reverse: bool = False) -> list[int]:
    """Sorts an array of numbers."""
    return sorted(array, reverse=reverse)


@tool("mat_mul")
def mat_mul(matA: list[list[float]], matB: list[list[float]]) -> list[list[float]]:
    """Multiplies two matrices."""
    return [[sum(a * b for a, b in zip(row, col)) for col in zip(*matB)] for row in matA]


@tool("quadratic_roots")
def quadratic_roots(a: int, b: int, c: int) -> list[float]:
    """Calculates the roots of a quadratic equation."""
    disc = b * b - 4 * a * c
    if disc < 0:
        return []
    return [(-b + math.sqrt(disc)) / (2 * a), (-b - math.sqrt(disc)) / (2 * a)]


@tool("estimate_derivative")
def estimate_derivative(function: str, x: int) -> float:
    """Estimate the derivative of a function at a given point."""
    from workbench.tools.arith import evaluate

    text = function.split("=", 1)[-1].replace("lambda x:", "").strip()

    def f(at: float) -> float:
        return float(evaluate(text.replace("x", f"({at!r})")))
    h = 1e-5
    return round((f(x + h) - f(x - h)) / (2 * h), 4)


@tool("convert_binary_to_decimal")
def convert_binary_to_decimal(binary: str) -> int:
    """Converts a binary number to a decimal number."""
    return int(binary, 2)


@tool("convert_decimal_to_hex")
def convert_decimal_to_hex(decimal: int) -> str:
    """Converts a decimal number to a hexadecimal number."""
    return hex(decimal)[2:]


# -- geometry --------------------------------------------------------------------------------
@tool("calculate_triangle_area")
def calculate_triangle_area(base: int, height: int) -> float:
    """Calculates the area of a triangle given its base and height."""
    return base * height / 2


@tool("geometry_area_circle")
def geometry_area_circle(radius: int) -> float:
    """Calculates the area of a circle."""
    return math.pi * radius ** 2


@tool("get_distance")
def get_distance(pointA: list[float], pointB: list[float]) -> float:
    """Calculates the distance between two 2D points."""
    return math.dist(pointA, pointB)


@tool("polygon_area")
def polygon_area(vertices: list[list[float]]) -> float:
    """Calculate the area of a polygon given its vertices using the shoelace formula."""
    n = len(vertices)
    return abs(sum(vertices[i][0] * vertices[(i + 1) % n][1] - vertices[(i + 1) % n][0] * vertices[i][1]
                   for i in range(n))) / 2


@tool("validate_polygon")
def validate_polygon(vertices: list[list[float]]) -> bool:
    """Checks if the given vertices form a valid polygon."""
    return len(vertices) >= 3 and polygon_area(vertices) > 0


@tool("maxPoints")
def max_points(points: list[list[int]]) -> int:
    """Finds the maximum number of points on a line."""
    best = min(len(points), 1)
    for i, (x1, y1) in enumerate(points):
        slopes: dict = {}
        for x2, y2 in points[i + 1:]:
            dx, dy = x2 - x1, y2 - y1
            g = math.gcd(dx, dy) or 1
            key = (dx // g, dy // g) if dx > 0 or (dx == 0 and dy > 0) else (-dx // g, -dy // g)
            slopes[key] = slopes.get(key, 1) + 1
            best = max(best, slopes[key])
    return best


@tool("convert_coordinates")
def convert_coordinates(coordinates: list[list[float]]) -> list[list[float]]:
    """Converts a list of tuples into a list of lists."""
    return [list(c) for c in coordinates]


# -- regression ------------------------------------------------------------------------------
def _slope(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


@tool("calculate_slope")
def calculate_slope(x: list[int], y: list[int]) -> float:
    """Calculates the slope of the linear regression line from a set of points."""
    return _slope(x, y)


@tool("calculate_intercept")
def calculate_intercept(x: list[int], y: list[int], slope: int) -> float:
    """Calculates the y-intercept of the linear regression line from a set of points and a given slope."""
    return sum(y) / len(y) - slope * sum(x) / len(x)


@tool("linear_regression")
def linear_regression(x: list[int], y: list[int], point: int) -> float:
    """Finds the linear regression of a set of points and evaluates it at a given point."""
    slope = _slope(x, y)
    return slope * point + (sum(y) / len(y) - slope * sum(x) / len(x))


@tool("predict_value")
def predict_value(slope: int, intercept: int, x: int) -> float:
    """Predicts the value of y given the slope, intercept, and an x value."""
    return slope * x + intercept


# -- physics, health, money ------------------------------------------------------------------
@tool("calculate_density")
def calculate_density(mass: float, volume: float) -> float:
    """Calculates the density of an object."""
    return mass / volume


@tool("calculate_displacement")
def calculate_displacement(initial_velocity: float, acceleration: float, time: float) -> float:
    """Calculates the displacement of an object."""
    return initial_velocity * time + 0.5 * acceleration * time ** 2


@tool("calculate_final_velocity")
def calculate_final_velocity(initial_velocity: float, acceleration: float, time: float) -> float:
    """Calculates the final velocity of an object."""
    return initial_velocity + acceleration * time


@tool("calculate_electrostatic_potential_energy")
def calculate_electrostatic_potential_energy(charge: float, voltage: float) -> float:
    """Calculates the electrostatic potential energy."""
    return charge * voltage


@tool("convert_temperature")
def convert_temperature(temperature: float, unit_from: str, unit_to: str) -> float:
    """Converts temperature from Celsius to Fahrenheit or vice versa."""
    src, dst = unit_from.strip().lower()[:1], unit_to.strip().lower()[:1]
    if src == dst:
        return temperature
    return temperature * 9 / 5 + 32 if src == "c" else (temperature - 32) * 5 / 9


@tool("calculate_basal_metabolic_rate")
def calculate_basal_metabolic_rate(weight: float, height: float, age: float, gender: str) -> float:
    """Calculates the Basal Metabolic Rate (BMR) of a person (Mifflin-St Jeor)."""
    return 10 * weight + 6.25 * height - 5 * age + (5 if gender.strip().lower().startswith("m") else -161)


@tool("calculate_daily_energy_expenditure")
def calculate_daily_energy_expenditure(basal_metabolic_rate: float, activity_level: float) -> float:
    """Calculates the daily energy expenditure based on BMR and activity level."""
    return basal_metabolic_rate * activity_level


@tool("calculate_nutritional_needs")
def calculate_nutritional_needs(weight: float, height: float, age: float, gender: str, activity_level: int,
                                goal: str) -> dict:
    """Calculates calories, protein, fat and carbohydrates for a goal (lose, maintain, gain)."""
    factors = {1: 1.2, 2: 1.375, 3: 1.55, 4: 1.725, 5: 1.9}
    calories = calculate_basal_metabolic_rate(weight, height, age, gender) * factors.get(activity_level, 1.2)
    calories += {"lose": -500, "gain": 500}.get(goal.strip().lower(), 0)
    return {"calories": calories, "proteins_g": calories * 0.3 / 4, "fats_g": calories * 0.25 / 9,
            "carbohydrates_g": calories * 0.45 / 4}


@tool("calculate_future_value")
def calculate_future_value(present_value: float, interest_rate: float | None = None, periods: int | None = None,
                           annual_contribution: float = 0.0, rate_of_return: float | None = None,
                           years: int | None = None) -> float:
    """Calculates the future value of an investment (BFCL uses two signatures under this name:
    present value + rate + periods, or with yearly contributions at a rate of return)."""
    rate = interest_rate if interest_rate is not None else (rate_of_return or 0.0)
    n = periods if periods is not None else (years or 0)
    grown = present_value * (1 + rate) ** n
    return grown + (annual_contribution * (((1 + rate) ** n - 1) / rate if rate else n))


@tool("calculate_interest_rate")
def calculate_interest_rate(principal: float, rate: float, time: float) -> float:
    """Calculates the simple interest for a given principal, rate, and time."""
    return principal * rate * time


@tool("compound_interest")
def compound_interest(principal: int, rate: float, times_compounded: int, years: int) -> float:
    """Calculates compound interest over time."""
    return principal * (1 + rate / times_compounded) ** (times_compounded * years) - principal


@tool("calculate_investment_value")
def calculate_investment_value(initial_investment: int, annual_contribution: int, years: int, annual_return: float,
                               inflation_rate: list[float], adjust_for_inflation: bool = True) -> float:
    """Calculates the value of an investment over time."""
    value = float(initial_investment)
    for year in range(years):
        value = value * (1 + annual_return) + annual_contribution
        if adjust_for_inflation and inflation_rate:
            value /= 1 + inflation_rate[min(year, len(inflation_rate) - 1)]
    return value


@tool("adjust_for_inflation")
def adjust_for_inflation(investment_value: float, inflation_rates: list[float]) -> float:
    """Adjusts the investment value for inflation for each year."""
    for rate in inflation_rates:
        investment_value /= 1 + rate
    return investment_value


@tool("inflation_adjustment")
def inflation_adjustment(amount: float, inflation_rate: float, years: int) -> float:
    """Adjusts an amount for inflation."""
    return amount / (1 + inflation_rate) ** years


@tool("mortgage_calculator")
def mortgage_calculator(loan_amount: float, interest_rate: float, loan_period: int) -> float:
    """Calculates the monthly mortgage payment."""
    monthly, months = interest_rate / 12, loan_period * 12
    return loan_amount / months if monthly == 0 else loan_amount * monthly / (1 - (1 + monthly) ** -months)


@tool("apply_discount")
def apply_discount(total: float, discount: float) -> float:
    """Applies a discount to the total price."""
    return total * (1 - discount)


@tool("calculate_total")
def calculate_total(quantities: list[int], prices: list[float]) -> float:
    """Calculates the total price of an order given the quantities and prices."""
    return sum(q * p for q, p in zip(quantities, prices))


@tool("calculate_total_price")
def calculate_total_price(room_price: float, nights: int, discount: float = 0.0) -> float:
    """Calculates the total price of the room booking."""
    return room_price * nights * (1 - discount)


@tool("order_food")
def order_food(item: list[str], quantity: list[int], price: list[float]) -> float:
    """Orders food for a customer. Return the total price."""
    return sum(q * p for q, p in zip(quantity, price))
