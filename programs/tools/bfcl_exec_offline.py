"""BFCL exec functions BFCL backs with web APIs or randomness (stock prices, weather,
movies, COVID counts, geocoding, currency rates, bookings, random numbers). There is no
network here, so they are deterministic offline stand-ins: the same normalised arguments
always give the same plausible result, derived from a hash. Execution match then asks the
right question — did the predicted call do what the accepted call does? — without the
network. All run in the sandbox (untrusted), like any user tool.
"""

from __future__ import annotations

import hashlib

from workbench.tools.functions import tool


def _hash(*parts) -> int:
    key = "|".join(str(p).strip().lower() for p in parts)
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)


def _pick(seed: int, low: float, high: float, digits: int = 2) -> float:
    return round(low + (seed % 10_000) / 10_000 * (high - low), digits)


@tool("generate_random_number")
def generate_random_number(min: int, max: int) -> int:
    """Generates a random number within a specified range (seeded by the range, so repeatable)."""
    return min + _hash(min, max) % (max - min + 1)


@tool("convert_currency")
def convert_currency(amount: float, from_currency: str, to_currency: str) -> float:
    """Converts an amount between currencies (offline: fixed rates derived from the currency codes)."""
    def rate(code: str) -> float:
        return 1.0 if code.strip().upper() == "USD" else _pick(_hash("rate", code), 0.2, 150.0, 4)
    return amount / rate(from_currency) * rate(to_currency)


# -- bookings (offline: no side effects, a confirmation) ---------------------------------------
@tool("book_room")
def book_room(room_type: str, check_in_date: str, check_out_date: str, customer_id: str, price: float = 0.0,
              discount_code: str = "") -> dict:
    """Books a room for a customer."""
    return {"customer_id": customer_id, "room_number": f"{room_type[:1].upper()}{_hash(room_type, customer_id) % 900 + 100}",
            "check_in_date": check_in_date, "check_out_date": check_out_date, "total_price": price}


@tool("confirm_booking")
def confirm_booking(customer_id: str, room_number: str, total_price: float) -> dict:
    """Confirms the room booking and sends a confirmation to the customer."""
    return {"customer_id": customer_id, "room_number": room_number, "total_price": total_price, "confirmed": True}


# -- web-API stand-ins (offline, deterministic) ------------------------------------------------
@tool("get_stock_price_by_stock_name")
def get_stock_price_by_stock_name(stock_name: str) -> float:
    """Finds the price of a stock by its stock name."""
    return _pick(_hash("price", stock_name), 5, 900)


@tool("get_company_name_by_stock_name")
def get_company_name_by_stock_name(stock_name: str) -> str:
    """Finds the company name of a stock by its stock name."""
    return f"{stock_name.strip().upper()} Corporation"


@tool("get_stock_history")
def get_stock_history(stock_name: str, interval: str, diffandsplits: str = "true") -> dict:
    """Finds the price history of a stock by its stock name."""
    seed = _hash("history", stock_name, interval)
    return {str(day): _pick(seed // (day + 1), 5, 900) for day in range(5)}


@tool("get_price_by_amazon_ASIN")
def get_price_by_amazon_asin(ASIN: str) -> str:
    """Finds the price of a product by its Amazon ASIN."""
    return f"${_pick(_hash('asin-price', ASIN), 5, 500):.2f}"


@tool("get_product_name_by_amazon_ASIN")
def get_product_name_by_amazon_asin(ASIN: str) -> str:
    """Finds the name of a product by its Amazon ASIN."""
    return f"Product {ASIN.strip().upper()}"


@tool("get_rating_by_amazon_ASIN")
def get_rating_by_amazon_asin(ASIN: str) -> float:
    """Finds the rating of a product by its Amazon ASIN."""
    return _pick(_hash("asin-rating", ASIN), 1, 5, 1)


@tool("get_active_covid_case_by_country")
def get_active_covid_case_by_country(country: str) -> int:
    """Finds the most up to date active cases of a country result from COVID."""
    return _hash("active", country) % 5_000_000


@tool("get_covid_death_by_country")
def get_covid_death_by_country(country: str) -> int:
    """Finds the most up to date total deaths of a country result from COVID."""
    return _hash("deaths", country) % 1_000_000


@tool("get_coordinate_by_ip_address")
def get_coordinate_by_ip_address(ip_address: str) -> list[float]:
    """Finds the latitude and longitude of an IP address."""
    seed = _hash("ip", ip_address)
    return [_pick(seed, -60, 70, 4), _pick(seed // 10_000, -180, 180, 4)]


@tool("get_zipcode_by_ip_address")
def get_zipcode_by_ip_address(ip_address: str) -> str:
    """Finds the zipcode of an IP address."""
    return f"{_hash('zip', ip_address) % 90_000 + 10_000}"


@tool("get_coordinates_from_city")
def get_coordinates_from_city(city_name: str) -> list[float]:
    """Fetches the latitude and longitude of a given city name."""
    seed = _hash("city", city_name)
    return [_pick(seed, -60, 70, 4), _pick(seed // 10_000, -180, 180, 4)]


@tool("retrieve_city_based_on_zipcode")
def retrieve_city_based_on_zipcode(zipcode: str) -> str:
    """Finds the city of a zipcode."""
    return f"City {_hash('zipcity', zipcode) % 1000}"


@tool("get_time_zone_by_coord")
def get_time_zone_by_coord(long: str, lat: str) -> str:
    """Finds the timezone of a coordinate."""
    return f"UTC{round(float(long) / 15):+d}"


@tool("get_weather_data")
def get_weather_data(coordinates: list[float]) -> dict:
    """Fetches weather data for the given latitude and longitude."""
    seed = _hash("weather", *[round(c, 2) for c in coordinates])
    return {"temperature_c": _pick(seed, -20, 40, 1), "wind_speed_kmh": _pick(seed // 7, 0, 60, 1)}


@tool("retrieve_holiday_by_year")
def retrieve_holiday_by_year(year: str, country: str) -> list[str]:
    """Finds the holidays of a year."""
    return [f"{year}-01-01", f"{year}-{_hash('holiday', year, country) % 12 + 1:02d}-15"]


@tool("find_term_on_urban_dictionary")
def find_term_on_urban_dictionary(term: str) -> str:
    """Finds the definition of a term on Urban Dictionary."""
    return f"{term.strip().lower()}: an informal term (offline definition {_hash('urban', term) % 1000})"


@tool("get_movie_director")
def get_movie_director(movie_name: str) -> str:
    """Fetches the director of a movie."""
    return f"Director {_hash('director', movie_name) % 1000}"


@tool("get_director_by_movie_name")
def get_director_by_movie_name(movie_name: str) -> str:
    """Gets the director of a movie."""
    return get_movie_director(movie_name)


@tool("get_movie_rating")
def get_movie_rating(movie_name: str) -> str:
    """Fetches the age rating of a movie."""
    return ["G", "PG", "PG-13", "R"][_hash("rating", movie_name) % 4]


@tool("get_movie_genre")
def get_movie_genre(movie_name: str) -> str:
    """Retrieves the genre of a movie."""
    return ["Drama", "Comedy", "Action", "Sci-Fi", "Animation"][_hash("genre", movie_name) % 5]
